//! The "SVG" and "PNG" links every panel carries: each points at the server's drawing of the
//! panel's figure (`GET /api/runs/{id}/figures/{name}.{svg|png}`, the code `actiscope report`
//! draws with) with the panel's current parameters, so what downloads is what the panel shows.

use leptos::prelude::*;

/// A figure as a panel shows it: run, figure name (`sankey`, `mapper`, …) and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FigureRef {
    /// The run.
    pub run_id: i64,
    /// The figure's name.
    pub name: &'static str,
    /// The panel's parameters as a query string (no leading `?`), e.g. `epoch=3&nodes=40`.
    pub query: String,
}

impl FigureRef {
    /// The figure's API path in `extension` (`svg` or `png`), without the access token.
    pub fn path(&self, extension: &str) -> String {
        let base = format!(
            "/api/runs/{}/figures/{}.{extension}",
            self.run_id, self.name
        );
        if self.query.is_empty() {
            base
        } else {
            format!("{base}?{}", self.query)
        }
    }

    /// The file name a download is saved under.
    pub fn file_name(&self, extension: &str) -> String {
        let epoch = self
            .query
            .split('&')
            .find_map(|pair| pair.strip_prefix("epoch="))
            .map(|e| format!("-epoch{e}"))
            .unwrap_or_default();
        format!("run{}-{}{epoch}.{extension}", self.run_id, self.name)
    }
}

/// "SVG" and "PNG" download links for `figure` (nothing while there is none). `id` names the
/// links for tests: `{id}-svg`, `{id}-png`.
#[component]
pub fn FigureLinks(
    /// Prefix of the links' ids.
    #[prop(into)]
    id: String,
    /// The figure the panel shows.
    figure: Signal<Option<FigureRef>>,
) -> impl IntoView {
    let link = move |extension: &'static str| {
        view! {
            <a
                id=format!("{}-{extension}", id.clone())
                class="figure-link"
                href=move || figure.get().map(|f| crate::api::url(&f.path(extension))).unwrap_or_default()
                download=move || figure.get().map(|f| f.file_name(extension)).unwrap_or_default()
                title=format!("download this figure as {}", extension.to_uppercase())
            >
                {extension.to_uppercase()}
            </a>
        }
    };
    let (svg, png) = (link.clone()("svg"), link("png"));
    view! {
        <span class="figure-links" hidden=move || figure.with(Option::is_none)>
            {svg}
            {png}
        </span>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_names_carry_the_panel_parameters() {
        let f = FigureRef {
            run_id: 3,
            name: "sankey",
            query: "epoch=7&nodes=40".to_owned(),
        };
        assert_eq!(
            f.path("svg"),
            "/api/runs/3/figures/sankey.svg?epoch=7&nodes=40"
        );
        assert_eq!(f.file_name("png"), "run3-sankey-epoch7.png");
        let whole = FigureRef {
            run_id: 3,
            name: "training",
            query: String::new(),
        };
        assert_eq!(whole.path("png"), "/api/runs/3/figures/training.png");
        assert_eq!(whole.file_name("svg"), "run3-training.svg");
    }
}
