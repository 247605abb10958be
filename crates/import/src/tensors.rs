//! safetensors files: the header (a JSON table of tensors) is parsed by the `safetensors`
//! crate's `Metadata`; each tensor's bytes are streamed from its offset, never the whole file.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use safetensors::Dtype as StDtype;
use safetensors::tensor::Metadata;

use crate::array::{ArrayInfo, RowChunks};
use crate::dtype::Dtype;
use crate::error::ImportError;

/// Largest header accepted, as the `safetensors` crate's own limit.
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// An open safetensors file: its header, checked against the file's length.
pub struct TensorFile {
    path: PathBuf,
    data_start: u64,
    metadata: Metadata,
}

impl TensorFile {
    /// Reads and checks the header of the file at `path`: its length, the JSON, and that the
    /// tensors' data fill the rest of the file exactly.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let invalid = |reason: String| ImportError::invalid(path, None, reason);
        let mut file = File::open(path).map_err(|e| ImportError::io(path, e))?;
        let file_len = file.metadata().map_err(|e| ImportError::io(path, e))?.len();
        let mut len_bytes = [0u8; 8];
        file.read_exact(&mut len_bytes)
            .map_err(|_| invalid("shorter than a safetensors header".to_owned()))?;
        let header_len = u64::from_le_bytes(len_bytes);
        if header_len > MAX_HEADER_BYTES || header_len > file_len.saturating_sub(8) {
            return Err(invalid(format!(
                "the header claims {header_len} bytes but the file holds {file_len} (truncated, \
                 or not a safetensors file)"
            )));
        }
        let mut header = vec![0u8; usize::try_from(header_len).unwrap_or(0)];
        file.read_exact(&mut header)
            .map_err(|e| ImportError::io(path, e))?;
        let metadata: Metadata = serde_json::from_slice(&header)
            .map_err(|e| invalid(format!("unreadable safetensors header: {e}")))?;
        let data_start = 8 + header_len;
        let data_len = metadata.data_len() as u64;
        if data_start + data_len != file_len {
            return Err(invalid(format!(
                "the header describes {data_len} bytes of tensors but the file holds {} \
                 (truncated?)",
                file_len.saturating_sub(data_start)
            )));
        }
        Ok(Self {
            path: path.to_owned(),
            data_start,
            metadata,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The tensor `name` as rows, or `None` when the file has no such tensor.
    pub fn open_tensor(&self, name: &str) -> Result<Option<RowChunks>, ImportError> {
        let Some(info) = self.metadata.info(name) else {
            return Ok(None);
        };
        let invalid = |reason: String| ImportError::invalid(&self.path, Some(name), reason);
        let dtype = match info.dtype {
            StDtype::F32 => Dtype::F32,
            StDtype::F64 => Dtype::F64,
            StDtype::F16 => Dtype::F16,
            StDtype::BF16 => Dtype::Bf16,
            StDtype::I8 => Dtype::Int(1),
            StDtype::I16 => Dtype::Int(2),
            StDtype::I32 => Dtype::Int(4),
            StDtype::I64 => Dtype::Int(8),
            StDtype::U8 => Dtype::Uint(1),
            StDtype::U16 => Dtype::Uint(2),
            StDtype::U32 => Dtype::Uint(4),
            StDtype::U64 => Dtype::Uint(8),
            other => {
                return Err(invalid(format!(
                    "dtype {other:?} is not a number type actiscope reads (float16/32/64, \
                     bfloat16, integers)"
                )));
            }
        };
        let array = ArrayInfo {
            dtype,
            big_endian: false,
            fortran_order: false,
            shape: info.shape.clone(),
        };
        let (start, end) = info.data_offsets;
        if array.data_bytes() != Some((end - start) as u64) {
            return Err(invalid(format!(
                "shape {:?} of {} does not fit its {} bytes",
                array.shape,
                array.dtype_name(),
                end - start
            )));
        }
        let mut file = File::open(&self.path).map_err(|e| ImportError::io(&self.path, e))?;
        file.seek(SeekFrom::Start(self.data_start + start as u64))
            .map_err(|e| ImportError::io(&self.path, e))?;
        let reader = BufReader::new(file).take((end - start) as u64);
        Ok(Some(RowChunks::new(
            array,
            Box::new(reader),
            &self.path,
            name,
        )))
    }
}
