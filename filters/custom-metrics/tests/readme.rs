//! The README's `stats_tags` list is what the code generates for the example
//! configuration.

use custom_metrics::config::stats_tags_for_config;
use std::path::Path;

#[test]
fn readme_stats_tags_match_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let start = readme
        .find("<!-- stats_tags:begin -->")
        .expect("begin marker");
    let end = readme.find("<!-- stats_tags:end -->").expect("end marker");
    let block = &readme[start..end];
    let config = std::fs::read(root.join("../../examples/custom-metrics/config.json"))
        .expect("example config");
    let mut want = String::from("```yaml\nstats_config:\n  stats_tags:\n");
    for t in stats_tags_for_config(&config).expect("config compiles") {
        want += &format!("  - {{tag_name: {}, regex: '{}'}}\n", t.tag_name, t.regex);
    }
    want += "```\n";
    assert!(
        block.contains(&want),
        "README stats_tags block should be:\n{want}"
    );
}
