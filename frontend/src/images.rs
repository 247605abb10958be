//! Small images as data URLs: 8-bit palette BMP (every browser decodes it), base64-encoded.

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let index = ((n >> shift) & 63) as usize;
                out.push(char::from(BASE64.get(index).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A `data:image/bmp;base64,...` URL of a `rows x cols` grey image (0 = black). Ink is drawn
/// dark on light, as digits are usually shown.
pub fn grey_bmp_data_url(pixels: &[u8], rows: usize, cols: usize) -> String {
    let palette: Vec<[u8; 3]> = (0..=255u8).map(|level| [255 - level; 3]).collect();
    palette_bmp_data_url(pixels, rows, cols, &palette)
}

/// A `data:image/bmp;base64,...` URL of a `rows x cols` image whose pixels index `palette`
/// (RGB, at most 256 colours; missing entries are black).
pub fn palette_bmp_data_url(
    pixels: &[u8],
    rows: usize,
    cols: usize,
    palette: &[[u8; 3]],
) -> String {
    let row_bytes = cols.div_ceil(4) * 4;
    let palette_bytes = 256 * 4;
    let offset = 14 + 40 + palette_bytes;
    let file_size = offset + row_bytes * rows;
    let mut bmp = Vec::with_capacity(file_size);
    let u32le = |v: usize| (v as u32).to_le_bytes();
    bmp.extend_from_slice(b"BM");
    bmp.extend_from_slice(&u32le(file_size));
    bmp.extend_from_slice(&[0, 0, 0, 0]);
    bmp.extend_from_slice(&u32le(offset));
    bmp.extend_from_slice(&u32le(40));
    bmp.extend_from_slice(&u32le(cols));
    bmp.extend_from_slice(&u32le(rows));
    bmp.extend_from_slice(&[1, 0, 8, 0]);
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&u32le(row_bytes * rows));
    bmp.extend_from_slice(&[0; 16]);
    for index in 0..256 {
        // BMP palettes are blue, green, red, reserved.
        let [r, g, b] = palette.get(index).copied().unwrap_or([0; 3]);
        bmp.extend_from_slice(&[b, g, r, 0]);
    }
    // BMP rows go bottom-up.
    for r in (0..rows).rev() {
        let row = pixels.get(r * cols..(r + 1) * cols).unwrap_or(&[]);
        bmp.extend_from_slice(row);
        bmp.extend(std::iter::repeat_n(0u8, row_bytes - row.len()));
    }
    format!("data:image/bmp;base64,{}", base64(&bmp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn bmp_has_the_right_size() {
        let url = grey_bmp_data_url(&[0; 28 * 28], 28, 28);
        assert!(url.starts_with("data:image/bmp;base64,Qk"));
    }

    #[test]
    fn palette_entries_are_stored_blue_green_red() {
        // One pixel, palette [red]: header (54 bytes), then the palette's first entry.
        let url = palette_bmp_data_url(&[0], 1, 1, &[[255, 0, 0]]);
        let encoded = url.trim_start_matches("data:image/bmp;base64,");
        // Bytes 54..58 are the first palette entry: base64 chars 72..80 cover bytes 54..60.
        let first_entry = base64(&[0, 0, 255, 0, 0, 0]);
        assert_eq!(encoded.get(72..80), Some(first_entry.as_str()));
    }
}
