//! The dashboard's shareable state in the page URL:
//! `?run=3&epoch=12&nodes=40&sel=4,17,230&mapper=0,2&sim=cka&compare=5`.

/// What the URL says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlState {
    /// Selected run.
    pub run: Option<i64>,
    /// Selected epoch (absent: follow the latest).
    pub epoch: Option<u32>,
    /// Most nodes per APD layer (absent: the default).
    pub max_nodes: Option<usize>,
    /// Selected probe instances.
    pub selection: Vec<u32>,
    /// Layer (0-based) of each mapper panel; absent: one panel on the first layer.
    pub mapper_layers: Option<Vec<u32>>,
    /// Method of the similarity panel (absent: the default).
    pub similarity_method: Option<String>,
    /// Run the similarity panel compares the shown run with.
    pub compare_with: Option<i64>,
    /// Access token for a server started with `--token`, as the URL writes it (still
    /// percent-encoded; [`crate::api::set_token`] decodes it).
    pub token: Option<String>,
}

impl UrlState {
    /// Parses a query string with or without the leading `?`; unknown keys and bad values are
    /// ignored.
    pub fn parse(query: &str) -> Self {
        let mut state = Self::default();
        for pair in query.trim_start_matches('?').split('&') {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            match key {
                "run" => state.run = value.parse().ok(),
                "epoch" => state.epoch = value.parse().ok(),
                "nodes" => state.max_nodes = value.parse().ok(),
                "mapper" => {
                    state.mapper_layers = Some(
                        value
                            .split([',', '%'])
                            .filter_map(|v| v.trim_start_matches("2C").parse().ok())
                            .collect(),
                    );
                }
                "token" if !value.is_empty() => state.token = Some(value.to_owned()),
                "sim" if crate::similarity::METHODS.contains(&value) => {
                    state.similarity_method = Some(value.to_owned());
                }
                "compare" => state.compare_with = value.parse().ok(),
                "sel" => {
                    state.selection = value
                        .split([',', '%'])
                        .filter_map(|v| v.trim_start_matches("2C").parse().ok())
                        .collect();
                }
                _ => {}
            }
        }
        state
    }

    /// The query string, starting with `?` (or empty).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(run) = self.run {
            parts.push(format!("run={run}"));
        }
        if let Some(epoch) = self.epoch {
            parts.push(format!("epoch={epoch}"));
        }
        if let Some(nodes) = self.max_nodes {
            parts.push(format!("nodes={nodes}"));
        }
        if !self.selection.is_empty() {
            let list: Vec<String> = self.selection.iter().map(u32::to_string).collect();
            parts.push(format!("sel={}", list.join(",")));
        }
        if let Some(layers) = &self.mapper_layers {
            let list: Vec<String> = layers.iter().map(u32::to_string).collect();
            parts.push(format!("mapper={}", list.join(",")));
        }
        if let Some(method) = &self.similarity_method {
            parts.push(format!("sim={method}"));
        }
        if let Some(run) = self.compare_with {
            parts.push(format!("compare={run}"));
        }
        if let Some(token) = &self.token {
            parts.push(format!("token={token}"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_ignores_junk() {
        let state = UrlState {
            run: Some(3),
            epoch: Some(12),
            max_nodes: Some(40),
            selection: vec![4, 17, 230],
            mapper_layers: Some(vec![0, 2]),
            similarity_method: Some("pwcca".to_owned()),
            compare_with: Some(5),
            token: Some("abc".to_owned()),
        };
        assert_eq!(UrlState::parse(&state.to_query()), state);
        assert_eq!(
            UrlState::parse("?run=x&epoch=-1&foo=bar"),
            UrlState::default()
        );
        assert_eq!(UrlState::parse("sel=1%2C2").selection, vec![1, 2]);
        assert_eq!(UrlState::default().to_query(), "");
        assert_eq!(UrlState::parse("mapper=").mapper_layers, Some(vec![]));
        // Only methods the server knows.
        assert_eq!(UrlState::parse("sim=euclid").similarity_method, None);
        assert_eq!(
            UrlState::parse("sim=cka-debiased")
                .similarity_method
                .as_deref(),
            Some("cka-debiased")
        );
    }
}
