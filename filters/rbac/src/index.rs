//! A path index over all rules, so that a request only evaluates the rules
//! that could match its path.
//!
//! A rule whose every operation (`to` item) has a positive `paths` field can
//! only match when the request path matches one of those paths. Those paths
//! go into a byte trie (exact values, prefixes, and the literal beginning of
//! templates) and a short list of suffixes; one walk along the request path
//! yields the candidate rules. Rules without such a requirement are always
//! candidates. The index only ever *skips* rules that cannot match: every
//! candidate is still evaluated in full, so decisions are unchanged.

use crate::matcher::{PathPattern, Pattern};
use crate::policy::{Condition, Leaf, Rule};

/// Words kept inline (512 rules) before a set spills to the heap.
const INLINE_WORDS: usize = 8;

/// A set of rule numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSet {
    inline: [u64; INLINE_WORDS],
    spill: Vec<u64>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet::with_capacity(0)
    }
}

impl RuleSet {
    fn with_capacity(n: usize) -> RuleSet {
        let words = n.div_ceil(64);
        RuleSet {
            inline: [0; INLINE_WORDS],
            spill: vec![0; words.saturating_sub(INLINE_WORDS)],
        }
    }
    fn word(&self, w: usize) -> Option<&u64> {
        if w < INLINE_WORDS {
            self.inline.get(w)
        } else {
            self.spill.get(w - INLINE_WORDS)
        }
    }
    fn insert(&mut self, i: u32) {
        let w = (i / 64) as usize;
        let slot = if w < INLINE_WORDS {
            self.inline.get_mut(w)
        } else {
            self.spill.get_mut(w - INLINE_WORDS)
        };
        if let Some(word) = slot {
            *word |= 1 << (i % 64);
        }
    }
    /// Whether rule `i` is in the set.
    pub fn contains(&self, i: u32) -> bool {
        self.word((i / 64) as usize)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }
    /// The rule numbers in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.inline
            .iter()
            .chain(self.spill.iter())
            .enumerate()
            .flat_map(|(w, &bits)| {
                let mut bits = bits;
                std::iter::from_fn(move || {
                    if bits == 0 {
                        return None;
                    }
                    let t = bits.trailing_zeros();
                    bits &= bits - 1;
                    Some(w as u32 * 64 + t)
                })
            })
    }

    fn insert_all(&mut self, rules: &[u32]) {
        for &r in rules {
            self.insert(r);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Children by next byte, sorted.
    children: Vec<(u8, u32)>,
    /// Rules with a prefix (or template beginning) ending here.
    prefix: Vec<u32>,
    /// Rules with an exact path ending here.
    exact: Vec<u32>,
}

/// The index.
#[derive(Debug, Clone, Default)]
pub struct PathIndex {
    nodes: Vec<Node>,
    suffixes: Vec<(String, u32)>,
    always: RuleSet,
    /// Number of indexed rules.
    rules: usize,
}

/// The paths a rule needs, if every operation of it names some.
fn requirement(rule: &Rule) -> Option<Vec<&PathPattern>> {
    if rule.to.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for op in &rule.to {
        let paths = op
            .iter()
            .find_map(|c: &Condition| match (&c.leaf, c.negated) {
                (Leaf::Paths(ps), false) => Some(ps),
                _ => None,
            })?;
        out.extend(paths.iter());
    }
    Some(out)
}

impl PathIndex {
    /// Indexes `rules` (numbered in iteration order).
    pub(crate) fn build<'r>(rules: impl Iterator<Item = &'r Rule>) -> PathIndex {
        let mut index = PathIndex {
            nodes: vec![Node::default()],
            ..Default::default()
        };
        let reqs: Vec<Option<Vec<&PathPattern>>> = rules.map(requirement).collect();
        index.rules = reqs.len();
        index.always = RuleSet::with_capacity(reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let i = i as u32;
            let Some(paths) = req else {
                index.always.insert(i);
                continue;
            };
            for p in paths {
                match p {
                    PathPattern::Str(Pattern::Exact(s)) => {
                        let n = index.node_for(s);
                        index.nodes[n].exact.push(i);
                    }
                    PathPattern::Str(Pattern::Prefix(s)) => {
                        let n = index.node_for(s);
                        index.nodes[n].prefix.push(i);
                    }
                    PathPattern::Str(Pattern::Suffix(s)) => index.suffixes.push((s.clone(), i)),
                    PathPattern::Str(Pattern::Present | Pattern::NonEmpty) => {
                        index.nodes[0].prefix.push(i)
                    }
                    PathPattern::Template(t) => {
                        let n = index.node_for(&t.literal_prefix());
                        index.nodes[n].prefix.push(i);
                    }
                }
            }
        }
        index
    }

    fn node_for(&mut self, key: &str) -> usize {
        let mut n = 0usize;
        for &b in key.as_bytes() {
            n = match self.nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                Ok(k) => self.nodes[n].children[k].1 as usize,
                Err(k) => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[n].children.insert(k, (b, id as u32));
                    id
                }
            };
        }
        n
    }

    /// The rules that may match `path`.
    pub fn candidates(&self, path: &str) -> RuleSet {
        let mut set = self.always.clone();
        if self.nodes.is_empty() {
            return set;
        }
        let bytes = path.as_bytes();
        let mut n = 0usize;
        let mut depth = 0;
        loop {
            let node = &self.nodes[n];
            set.insert_all(&node.prefix);
            if depth == bytes.len() {
                set.insert_all(&node.exact);
                break;
            }
            match node.children.binary_search_by_key(&bytes[depth], |c| c.0) {
                Ok(k) => {
                    n = node.children[k].1 as usize;
                    depth += 1;
                }
                Err(_) => break,
            }
        }
        for (s, r) in &self.suffixes {
            if path.ends_with(s.as_str()) {
                set.insert(*r);
            }
        }
        set
    }

    /// Number of rules indexed.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// Whether no rule is indexed.
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }
}

#[cfg(test)]
mod tests {
    use crate::attributes::Attributes;
    use crate::config::Config;
    use wasmesh_common::HeaderMap;

    /// The index never leaves out a rule that matches: for many paths and
    /// every rule of a configuration mixing all path forms, "matches" implies
    /// "candidate", and rules without path requirements are always candidates.
    #[test]
    fn never_skips_a_matching_rule() {
        let to = |paths: &[&str]| serde_json::json!({"to": [{"operation": {"paths": paths}}]});
        let rules = vec![
            to(&["/a"]),
            to(&["/a/*"]),
            to(&["/a*"]),
            to(&["*.png"]),
            to(&["*"]),
            to(&["/a/{*}/c"]),
            to(&["/{*}/b"]),
            to(&["/a/{**}"]),
            to(&["/{**}/c"]),
            to(&["/", "/b"]),
            serde_json::json!({"to": [{"operation": {"paths": ["/a"]}}, {"operation": {"methods": ["GET"]}}]}),
            serde_json::json!({"to": [{"operation": {"notPaths": ["/a"]}}]}),
            serde_json::json!({"to": [{"operation": {"paths": ["/x"], "notPaths": ["/a"]}}, {"operation": {"paths": ["/a/b"]}}]}),
            serde_json::json!({"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}),
            serde_json::json!({}),
        ];
        let policies: Vec<_> = rules
            .iter()
            .enumerate()
            .map(|(i, r)| serde_json::json!({"name": format!("p{i}"), "action": "DENY", "rules": [r]}))
            .collect();
        let c = Config::from_json(
            serde_json::json!({"policies": policies})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let engine = &c.engine;
        let pieces = ["/", "a", "b", "c", "x", ".png", "/a", ""];
        let mut paths = vec![String::new()];
        for _ in 0..4 {
            let mut next = Vec::new();
            for p in &paths {
                for q in pieces {
                    next.push(format!("{p}{q}"));
                }
            }
            paths.extend(next);
            paths.sort();
            paths.dedup();
        }
        let headers = HeaderMap::from_slice(&[(":method", "GET")]);
        let headers = crate::headers::Headers::from_map(&headers);
        let mut checked = 0;
        for path in paths.iter().map(|p| format!("/{p}")) {
            let a = Attributes::new(&headers, "GET", &path);
            let set = engine.index.candidates(&path);
            let decision = engine.evaluate(&a);
            for (i, p) in engine.policies().iter().enumerate() {
                let rule = &p.rules[0];
                let matches = rule.matches(&a, crate::policy::Action::Deny.mode_for_tests());
                if matches {
                    // One rule per policy: rule number i.
                    assert!(
                        set.contains(i as u32),
                        "rule {i} ({:?}) skipped for {path}",
                        rules[i]
                    );
                    assert!(
                        decision.matched.iter().any(|m| m.policy == i),
                        "rule {i} not reported for {path}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked > 10_000, "{checked}");
    }

    #[test]
    fn rule_sets_spill_beyond_512() {
        let mut set = super::RuleSet::with_capacity(1000);
        for i in [0u32, 63, 64, 511, 512, 777, 999] {
            set.insert(i);
        }
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![0, 63, 64, 511, 512, 777, 999]
        );
        assert!(set.contains(512) && !set.contains(513) && !set.contains(5000));
    }

    #[test]
    fn candidates_are_selective() {
        let policies: Vec<_> = (0..50)
            .map(|i| {
                serde_json::json!({"name": format!("p{i}"), "rules": [
                    {"to": [{"operation": {"paths": [format!("/svc{i}/*"), format!("/exact/{i}")]}}]}
                ]})
            })
            .collect();
        let c = Config::from_json(
            serde_json::json!({"policies": policies})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let set = c.engine.index.candidates("/svc7/x");
        let n: Vec<u32> = (0..50).filter(|&i| set.contains(i)).collect();
        assert_eq!(n, vec![7]);
        let set = c.engine.index.candidates("/exact/12");
        assert_eq!(
            (0..50).filter(|&i| set.contains(i)).collect::<Vec<_>>(),
            vec![12]
        );
        let set = c.engine.index.candidates("/exact/1");
        assert_eq!(
            (0..50).filter(|&i| set.contains(i)).collect::<Vec<_>>(),
            vec![1]
        );
        let set = c.engine.index.candidates("/nothing");
        assert_eq!((0..50).filter(|&i| set.contains(i)).count(), 0);
        assert_eq!(c.engine.index.len(), 50);
    }
}
