//! Envoy's tag extraction (`stats_config.stats_tags`): the tag producer
//! applied to every stat name before it is rendered.

use crate::{stats_tags_for_labels, StatsTag};

/// One compiled tag extractor (Envoy's `TagExtractorStdRegexImpl`).
#[derive(Debug, Clone)]
struct TagExtractor {
    name: String,
    regex: regex_lite::Regex,
}

/// Envoy's tag producer: the configured `stats_tags` applied to a stat name.
///
/// As in Envoy (`TagProducerImpl::produceTags`), every extractor runs on the
/// original name; extractors whose regex starts with a literal `^token\.`
/// only run on names whose first `.`-separated token is `token` and come after
/// the others; the first capture group of a match is removed from the name and
/// the second (or the first, if there is no second) is the value; when several
/// extractors share a tag name, only the first that matches produces the tag.
/// The tags are returned in that order, which is the label order of the
/// Prometheus output.
#[derive(Debug, Clone)]
pub struct TagProducer {
    without_prefix: Vec<TagExtractor>,
    with_prefix: Vec<(String, TagExtractor)>,
}

impl TagProducer {
    /// Compiles `tags`. Fails on a regex this implementation cannot run
    /// (e.g. look-ahead, which Envoy's `std::regex` supports) or one without a
    /// capture group.
    pub fn new(tags: &[StatsTag]) -> Result<TagProducer, String> {
        let mut p = TagProducer {
            without_prefix: Vec::new(),
            with_prefix: Vec::new(),
        };
        for t in tags {
            let regex = regex_lite::Regex::new(&t.regex)
                .map_err(|e| format!("stats tag `{}`: regex `{}`: {e}", t.tag_name, t.regex))?;
            if regex.captures_len() < 2 {
                return Err(format!(
                    "stats tag `{}`: regex `{}` has no capture group",
                    t.tag_name, t.regex
                ));
            }
            let ex = TagExtractor {
                name: t.tag_name.clone(),
                regex,
            };
            match regex_prefix_token(&t.regex) {
                Some(tok) => p.with_prefix.push((tok, ex)),
                None => p.without_prefix.push(ex),
            }
        }
        Ok(p)
    }

    /// The producer for [`standard_stats_tags`] plus `labels`.
    pub fn for_labels<'a>(labels: impl IntoIterator<Item = &'a str>) -> TagProducer {
        // Our own regexes always compile.
        TagProducer::new(&stats_tags_for_labels(labels)).unwrap_or(TagProducer {
            without_prefix: Vec::new(),
            with_prefix: Vec::new(),
        })
    }

    /// The tag-extracted name and the tags of `stat_name` (a full Envoy stat
    /// name, e.g. `wasmcustom.reporter=.=destination;.;istio_requests_total`).
    pub fn produce_tags(&self, stat_name: &str) -> (String, Vec<(String, String)>) {
        let mut tags: Vec<(String, String)> = Vec::new();
        let mut remove: Vec<(usize, usize)> = Vec::new();
        let first_token = stat_name.split_once('.').map(|(t, _)| t);
        let prefixed = self
            .with_prefix
            .iter()
            .filter(|(tok, _)| Some(tok.as_str()) == first_token)
            .map(|(_, ex)| ex);
        for ex in self.without_prefix.iter().chain(prefixed) {
            if tags.iter().any(|(n, _)| *n == ex.name) {
                continue;
            }
            let Some(caps) = ex.regex.captures(stat_name) else {
                continue;
            };
            let Some(removed) = caps.get(1) else {
                continue;
            };
            let value = caps.get(2).unwrap_or(removed);
            tags.push((ex.name.clone(), value.as_str().to_string()));
            remove.push((removed.start(), removed.end()));
        }
        (remove_intervals(stat_name, &mut remove), tags)
    }
}

/// Envoy's `TagExtractorImplBase::extractRegexPrefix`: `^token\.` (or
/// `^token(?=\.)`, or `^token$`) gives `token`.
pub(crate) fn regex_prefix_token(regex: &str) -> Option<String> {
    let rest = regex.strip_prefix('^')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if end == 0 {
        return None;
    }
    let after = &rest[end..];
    let ok = after.starts_with("\\.") || after.starts_with("(?=\\.)") || after == "$";
    ok.then(|| rest[..end].to_string())
}

fn remove_intervals(s: &str, intervals: &mut [(usize, usize)]) -> String {
    if intervals.is_empty() {
        return s.to_string();
    }
    intervals.sort_unstable();
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for &(start, end) in intervals.iter() {
        if start > pos {
            out.push_str(&s[pos..start]);
        }
        pos = pos.max(end);
    }
    if pos < s.len() {
        out.push_str(&s[pos..]);
    }
    out
}
