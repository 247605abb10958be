//! The colours every picture shares: classes, series, the light-blue to dark-red ramp of
//! values in [0, 1], and the APD links' blue-to-red share of errors.

/// Colours of successive series.
pub const SERIES_COLOURS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

/// Colours of classes 0..=9 (Tableau 10), repeating for more classes.
pub const CLASS_COLOURS: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of class `class`.
pub fn class_colour(class: u32) -> String {
    CLASS_COLOURS
        .get(class as usize % CLASS_COLOURS.len())
        .copied()
        .unwrap_or("#999")
        .to_owned()
}

/// A colour on a light-blue → dark-red ramp for `t` in `[0, 1]`, as CSS.
pub fn ramp(t: f64) -> String {
    let [r, g, b] = ramp_rgb(t);
    format!("rgb({r},{g},{b})")
}

/// [`ramp`] as red, green and blue bytes.
pub fn ramp_rgb(t: f64) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    [lerp(198.0, 165.0), lerp(219.0, 15.0), lerp(239.0, 21.0)]
}

/// Colour of a link with `errors` of `instances` misclassified, blue (none) to red (all), as
/// red, green and blue bytes.
pub fn error_rgb(errors: u32, instances: u32) -> [u8; 3] {
    let share = if instances == 0 {
        0.0
    } else {
        f64::from(errors) / f64::from(instances)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * share).round() as u8;
    [mix(110.0, 214.0), mix(160.0, 39.0), mix(220.0, 40.0)]
}

/// [`error_rgb`] as CSS.
pub fn error_colour(errors: u32, instances: u32) -> String {
    let [r, g, b] = error_rgb(errors, instances);
    format!("rgb({r},{g},{b})")
}

/// A CSS `#rrggbb` colour as bytes; `None` for anything else.
pub fn hex_rgb(css: &str) -> Option<[u8; 3]> {
    let hex = css.strip_prefix('#')?;
    if hex.len() != 6 {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ramps_and_shares_have_fixed_ends() {
        assert_eq!(ramp_rgb(0.0), [198, 219, 239]);
        assert_eq!(ramp(1.0), "rgb(165,15,21)");
        assert_eq!(ramp(2.0), ramp(1.0));
        assert_eq!(ramp_rgb(f64::NAN), ramp_rgb(0.0));
        assert_eq!(error_colour(0, 4), "rgb(110,160,220)");
        assert_eq!(error_colour(4, 4), "rgb(214,39,40)");
        assert_eq!(error_colour(0, 0), error_colour(0, 4));
        assert_eq!(class_colour(10), class_colour(0));
        assert_eq!(hex_rgb("#4e79a7"), Some([0x4e, 0x79, 0xa7]));
        assert_eq!(hex_rgb("rgb(1,2,3)"), None);
        assert_eq!(hex_rgb("#12345"), None);
    }
}
