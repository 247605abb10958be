//! Element types an imported array may hold, and their conversion to `f32`.

/// An element type, with its byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// IEEE single precision.
    F32,
    /// IEEE double precision.
    F64,
    /// IEEE half precision.
    F16,
    /// bfloat16 (the upper half of an `f32`).
    Bf16,
    /// Signed integers of this many bytes.
    Int(usize),
    /// Unsigned integers of this many bytes.
    Uint(usize),
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::F16 | Self::Bf16 => 2,
            Self::Int(n) | Self::Uint(n) => n,
        }
    }

    /// Whether it is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F64 | Self::F16 | Self::Bf16)
    }

    /// A name for messages.
    pub fn name(self) -> String {
        match self {
            Self::F32 => "float32".to_owned(),
            Self::F64 => "float64".to_owned(),
            Self::F16 => "float16".to_owned(),
            Self::Bf16 => "bfloat16".to_owned(),
            Self::Int(n) => format!("int{}", 8 * n),
            Self::Uint(n) => format!("uint{}", 8 * n),
        }
    }
}

/// Converts `bytes` (whole elements of `dtype`, in `big_endian` byte order or not) to `f32`,
/// appending to `out`. Integers convert exactly up to 2^24.
pub fn to_f32(bytes: &[u8], dtype: Dtype, big_endian: bool, out: &mut Vec<f32>) {
    macro_rules! convert {
        ($n:literal, $from:expr) => {
            out.extend(bytes.chunks_exact($n).map(|chunk| {
                let mut raw = [0u8; $n];
                raw.copy_from_slice(chunk);
                if big_endian {
                    raw.reverse();
                }
                #[allow(clippy::redundant_closure_call)]
                ($from)(raw)
            }))
        };
    }
    match dtype {
        Dtype::F32 => convert!(4, f32::from_le_bytes),
        Dtype::F64 => convert!(8, |raw| f64::from_le_bytes(raw) as f32),
        Dtype::F16 => convert!(2, |raw| half::f16::from_le_bytes(raw).to_f32()),
        Dtype::Bf16 => convert!(2, |raw| half::bf16::from_le_bytes(raw).to_f32()),
        Dtype::Int(1) => convert!(1, |raw: [u8; 1]| f32::from(i8::from_le_bytes(raw))),
        Dtype::Int(2) => convert!(2, |raw| f32::from(i16::from_le_bytes(raw))),
        Dtype::Int(4) => convert!(4, |raw| i32::from_le_bytes(raw) as f32),
        Dtype::Int(8) => convert!(8, |raw| i64::from_le_bytes(raw) as f32),
        Dtype::Uint(1) => convert!(1, |raw: [u8; 1]| f32::from(raw[0])),
        Dtype::Uint(2) => convert!(2, |raw| f32::from(u16::from_le_bytes(raw))),
        Dtype::Uint(4) => convert!(4, |raw| u32::from_le_bytes(raw) as f32),
        Dtype::Uint(8) => convert!(8, |raw| u64::from_le_bytes(raw) as f32),
        // Sizes no reader produces.
        Dtype::Int(_) | Dtype::Uint(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_converts_in_both_byte_orders() {
        let cases: Vec<(Dtype, Vec<u8>, f32)> = vec![
            (Dtype::F32, 1.5f32.to_le_bytes().to_vec(), 1.5),
            (Dtype::F64, (-2.25f64).to_le_bytes().to_vec(), -2.25),
            (
                Dtype::F16,
                half::f16::from_f32(0.5).to_le_bytes().to_vec(),
                0.5,
            ),
            (
                Dtype::Bf16,
                half::bf16::from_f32(-3.0).to_le_bytes().to_vec(),
                -3.0,
            ),
            (Dtype::Int(2), (-7i16).to_le_bytes().to_vec(), -7.0),
            (Dtype::Uint(8), 9u64.to_le_bytes().to_vec(), 9.0),
            (Dtype::Int(1), vec![0xff], -1.0),
        ];
        for (dtype, little, expected) in cases {
            let mut out = Vec::new();
            to_f32(&little, dtype, false, &mut out);
            let mut big = little.clone();
            big.reverse();
            to_f32(&big, dtype, true, &mut out);
            assert_eq!(out, [expected, expected], "{}", dtype.name());
        }
    }
}
