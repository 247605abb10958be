//! The APD drawn as a Sankey diagram: one column per hidden layer, then the predicted labels;
//! node height by instances, link width by instances, link colour by the share of errors.
//!
//! Speed: an APD of the whole probe set has a thousand nodes and more links. One SVG element
//! per node and link made the browser parse and lay out thousands of elements on every epoch
//! change (70-200 ms measured in Chromium). Here the links are filled bands merged into one
//! `<path>` per colour and state, the nodes into one `<path>` per shade and state, so the
//! browser sees a few dozen elements; hover and click are resolved by [`hit_test`] against the
//! geometry in Rust.
//!
//! Files: the pure geometry, hit-testing and the facts shown about nodes and links live in
//! `actiscope_layout::sankey` (shared with the report's figures, tested on the host); here are `markup` (the SVG strings and the colour scale) and
//! `view` (the Leptos component).

mod markup;
mod view;

pub use actiscope_layout::sankey::{
    HEIGHT, Hovered, Layout, LinkBand, NodeBox, WIDTH, anchor, describe_node, hit_test, layout,
    purity_of, resolve, strongest_flows,
};
pub use markup::{error_colour, markup};
pub use view::{Sankey, SankeyProps};
