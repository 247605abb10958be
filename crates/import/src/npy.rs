//! `.npy` arrays, alone or as entries of an `.npz` archive: the header is parsed by `npyz`
//! (format versions 1.0 to 3.0, any byte order, C or Fortran order), the data streamed here.

use std::fs::File;
use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use npyz::{DType, Endianness, NpyHeader, Order, TypeChar};

use crate::array::{ArrayInfo, RowChunks};
use crate::dtype::Dtype;
use crate::error::ImportError;

/// The element type of a plain npy dtype: floats (2-byte void `V2` is read as bfloat16, the
/// way `ml_dtypes` saves it), signed and unsigned integers; `None` for anything else.
fn dtype_of(header: &NpyHeader) -> Option<(Dtype, bool)> {
    let DType::Plain(ty) = header.dtype() else {
        return None;
    };
    let size = usize::try_from(ty.size_field()).ok()?;
    let dtype = match (ty.type_char(), size) {
        (TypeChar::Float, 4) => Dtype::F32,
        (TypeChar::Float, 8) => Dtype::F64,
        (TypeChar::Float, 2) => Dtype::F16,
        (TypeChar::RawData, 2) => Dtype::Bf16,
        (TypeChar::Int, 1 | 2 | 4 | 8) => Dtype::Int(size),
        (TypeChar::Uint, 1 | 2 | 4 | 8) => Dtype::Uint(size),
        _ => return None,
    };
    Some((dtype, ty.endianness() == Endianness::Big))
}

/// Counts the bytes read through it.
struct Counting<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// Parses the `.npy` header at the start of `reader`: what the array holds, and the header's
/// length in bytes (the reader is left at the first data byte).
fn read_header(
    reader: impl Read,
    path: &Path,
    tensor: &str,
) -> Result<(ArrayInfo, u64), ImportError> {
    let invalid = |reason: String| ImportError::invalid(path, Some(tensor), reason);
    let mut counting = Counting {
        inner: reader,
        count: 0,
    };
    let header = NpyHeader::from_reader(&mut counting)
        .map_err(|e| invalid(format!("not a readable .npy header: {e}")))?;
    let (dtype, big_endian) = dtype_of(&header).ok_or_else(|| {
        invalid(format!(
            "dtype {} is not a number type actiscope reads (float16/32/64, bfloat16, integers)",
            header.dtype().descr()
        ))
    })?;
    let info = ArrayInfo {
        dtype,
        big_endian,
        fortran_order: header.order() == Order::Fortran,
        shape: header
            .shape()
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect(),
    };
    Ok((info, counting.count))
}

/// Refuses an array whose header promises more data than the `available` bytes after it.
fn check_fits(
    info: &ArrayInfo,
    available: u64,
    path: &Path,
    tensor: &str,
) -> Result<(), ImportError> {
    match info.data_bytes() {
        Some(needed) if needed <= available => Ok(()),
        needed => Err(ImportError::invalid(
            path,
            Some(tensor),
            format!(
                "the header promises shape {:?} of {} ({} bytes) but the file holds {available} \
                 bytes of data (truncated?)",
                info.shape,
                info.dtype_name(),
                needed.map_or_else(|| "more than 2^64".to_owned(), |n| n.to_string())
            ),
        )),
    }
}

/// The array in the `.npy` bytes `reader` (positioned at the magic string), which holds
/// `data_len` bytes from there; `path` and `tensor` name it in errors.
fn array(
    mut reader: impl Read + Send + 'static,
    data_len: u64,
    path: &Path,
    tensor: &str,
) -> Result<RowChunks, ImportError> {
    let (info, header_len) = read_header(&mut reader, path, tensor)?;
    check_fits(&info, data_len.saturating_sub(header_len), path, tensor)?;
    Ok(RowChunks::new(info, Box::new(reader), path, tensor))
}

/// The array in the `.npy` file at `path`.
pub fn open(path: &Path, tensor: &str) -> Result<RowChunks, ImportError> {
    let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
    let len = file.metadata().map_err(|e| ImportError::io(path, e))?.len();
    array(BufReader::new(file), len, path, tensor)
}

/// Opens the entry `name.npy` of the `.npz` archive at `path` and hands it, with its
/// uncompressed size, to `read`; `None` when the archive has no such entry.
fn with_npz_entry<T>(
    path: &Path,
    name: &str,
    read: impl FnOnce(&mut zip::read::ZipFile<'_, BufReader<File>>, u64) -> Result<T, ImportError>,
) -> Result<Option<T>, ImportError> {
    let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| ImportError::invalid(path, None, format!("not a readable .npz: {e}")))?;
    let mut entry = match archive.by_name(&format!("{name}.npy")) {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(e) => return Err(ImportError::invalid(path, Some(name), e.to_string())),
    };
    let size = entry.size();
    read(&mut entry, size).map(Some)
}

/// What the array `name` of the `.npz` archive at `path` holds, from its header alone (only
/// the header's bytes are inflated), or `None` when the archive has no such entry.
pub fn npz_info(path: &Path, name: &str) -> Result<Option<ArrayInfo>, ImportError> {
    with_npz_entry(path, name, |entry, size| {
        let (info, header_len) = read_header(entry, path, name)?;
        check_fits(&info, size.saturating_sub(header_len), path, name)?;
        Ok(info)
    })
}

/// Largest `.npz` entry read, uncompressed (entries are read whole).
const MAX_NPZ_ENTRY_BYTES: u64 = 4 << 30;

/// The array `name` of the `.npz` archive at `path`, or `None` when it has no such entry.
/// Entries are read whole (compressed archives cannot be streamed by rows); `.npy` files or
/// safetensors suit layers too large for memory.
pub fn open_npz(path: &Path, name: &str) -> Result<Option<RowChunks>, ImportError> {
    let bytes = with_npz_entry(path, name, |entry, size| {
        if size > MAX_NPZ_ENTRY_BYTES {
            return Err(ImportError::invalid(
                path,
                Some(name),
                format!(
                    "the entry claims {size} bytes, more than the {MAX_NPZ_ENTRY_BYTES} read whole"
                ),
            ));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // The claimed size is the archive's word; the inflated bytes are counted too.
        entry
            .take(MAX_NPZ_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImportError::invalid(path, Some(name), format!("cannot inflate: {e}")))?;
        if bytes.len() as u64 > MAX_NPZ_ENTRY_BYTES {
            return Err(ImportError::invalid(
                path,
                Some(name),
                format!("the entry inflates past the {MAX_NPZ_ENTRY_BYTES} bytes read whole"),
            ));
        }
        Ok(bytes)
    })?;
    bytes
        .map(|bytes| {
            let len = bytes.len() as u64;
            array(Cursor::new(bytes), len, path, name)
        })
        .transpose()
}
