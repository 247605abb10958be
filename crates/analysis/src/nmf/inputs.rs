//! What goes into a factorization besides the layers: the probe images as a non-negative
//! input block ([`image_block`]), the weights that balance blocks of different scales
//! ([`block_weights`]), and the root-mean-square value of the data, the scale an RMSE is read
//! against ([`root_mean_square`]).

use actiscope_protocol::ProbeImages;

use super::NmfError;
use crate::Matrix;

/// The probe images as one block of the factorization.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBlock {
    /// One row per image, one column per pixel (row-major within the image), values in
    /// `[0, 1]`.
    pub matrix: Matrix,
    /// Image height and width in pixels.
    pub shape: (u32, u32),
}

/// The probe images as an `instances x pixels` block: each `u8` pixel scaled by `1/255`.
/// Planar point data (image shape `0 x 0`) are refused with [`NmfError::PlanarInputs`]: their
/// coordinates can be negative. Pixels that do not fill whole images are refused with
/// [`NmfError::Shape`].
pub fn image_block(images: &ProbeImages) -> Result<ImageBlock, NmfError> {
    let pixels_per_image = (images.rows as usize) * (images.cols as usize);
    if pixels_per_image == 0 {
        return Err(NmfError::PlanarInputs);
    }
    let count = images.pixels.len() / pixels_per_image;
    let values = images
        .pixels
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let matrix = Matrix::new(count, pixels_per_image, values)?;
    Ok(ImageBlock {
        matrix,
        shape: (images.rows, images.cols),
    })
}

/// One weight per block: with `balance`, `1 / ||block||_F`, so every block weighs the same in
/// the objective whatever its scale (an all-zero block keeps weight 1); otherwise 1 for all.
pub fn block_weights(blocks: &[Matrix], balance: bool) -> Vec<f32> {
    blocks
        .iter()
        .map(|m| {
            let norm = m.frobenius_norm();
            if balance && norm > 0.0 {
                1.0 / norm
            } else {
                1.0
            }
        })
        .collect()
}

/// The root-mean-square value over all values of all `blocks`, summed in `f64` (0 when they
/// hold no value): the RMSE of the all-zero reconstruction.
pub fn root_mean_square(blocks: &[Matrix]) -> f64 {
    let (sum_sq, count) = blocks.iter().fold((0.0f64, 0usize), |(s, c), m| {
        let block: f64 = m.as_slice().iter().map(|v| f64::from(*v).powi(2)).sum();
        (s + block, c + m.as_slice().len())
    });
    (sum_sq / count.max(1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(rows: u32, cols: u32, pixels: Vec<u8>) -> ProbeImages {
        ProbeImages {
            rows,
            cols,
            pixels,
            points: Vec::new(),
        }
    }

    #[test]
    fn images_become_scaled_rows() {
        let block = image_block(&images(1, 2, vec![0, 255, 51, 102])).unwrap();
        assert_eq!(block.shape, (1, 2));
        assert_eq!(block.matrix.rows(), 2);
        assert_eq!(block.matrix.cols(), 2);
        assert_eq!(block.matrix.as_slice(), &[0.0, 1.0, 0.2, 0.4]);
        let none = image_block(&images(2, 2, Vec::new())).unwrap();
        assert_eq!((none.matrix.rows(), none.matrix.cols()), (0, 4));
    }

    #[test]
    fn planar_points_and_partial_images_are_refused() {
        let planar = ProbeImages {
            points: vec![-1.0, 0.5],
            ..images(0, 0, Vec::new())
        };
        let err = image_block(&planar).unwrap_err();
        assert_eq!(err, NmfError::PlanarInputs);
        assert_eq!(
            err.to_string(),
            "this run's data are planar points, not images: their coordinates can be negative, \
             so the input block cannot join a non-negative factorization (set inputs=false)"
        );
        assert_eq!(
            image_block(&images(0, 5, vec![1, 2])),
            Err(NmfError::PlanarInputs)
        );
        let err = image_block(&images(2, 2, vec![0; 6])).unwrap_err();
        assert!(matches!(err, NmfError::Shape(_)), "{err:?}");
        assert_eq!(err.to_string(), "6 values cannot fill a 1x4 matrix");
    }

    #[test]
    fn weights_balance_only_when_asked_and_skip_zero_blocks() {
        let blocks = [
            Matrix::new(1, 2, vec![3.0, 4.0]).unwrap(),
            Matrix::new(2, 1, vec![0.0, 0.0]).unwrap(),
            Matrix::new(1, 1, vec![0.5]).unwrap(),
        ];
        assert_eq!(block_weights(&blocks, true), vec![0.2, 1.0, 2.0]);
        assert_eq!(block_weights(&blocks, false), vec![1.0; 3]);
        assert!(block_weights(&[], true).is_empty());
    }

    #[test]
    fn root_mean_square_over_all_blocks() {
        let blocks = [
            Matrix::new(1, 2, vec![3.0, 4.0]).unwrap(),
            Matrix::new(2, 1, vec![0.0, 1.0]).unwrap(),
        ];
        // (9 + 16 + 0 + 1) / 4 = 6.5
        assert!((root_mean_square(&blocks) - 6.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(root_mean_square(&[]), 0.0);
        assert_eq!(root_mean_square(&[Matrix::new(0, 3, vec![]).unwrap()]), 0.0);
    }
}
