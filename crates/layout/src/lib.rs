//! Geometry and colours shared by the dashboard and the report's figures, so that a figure
//! downloaded or written by `actiscope report` is laid out like the panel it came from.
//!
//! Owns: the APD Sankey's node and band positions, hit-testing and the facts shown about them
//! ([`sankey`]), the mapper graph's force layout ([`mapper`]) and the colour scales
//! ([`colour`]). Pure Rust on protocol types: no browser, no I/O, no drawing backend; it builds
//! for the host and for wasm32.

pub mod colour;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod mapper;
pub mod sankey;
