//! `wasmesh package`: a filter's `.wasm` as an OCI image that Istio's
//! `WasmPlugin` can pull.
//!
//! The image is the *compat* variant of the Wasm image specification, the
//! one Istio's fetcher tries first (`pkg/wasm/imagefetcher.go`,
//! `extractOCIStandardImage`):
//!
//! * an OCI image manifest (`application/vnd.oci.image.manifest.v1+json`)
//!   with the annotation `module.wasm.image/variant: compat`;
//! * an OCI image config (`application/vnd.oci.image.config.v1+json`);
//! * exactly one layer, `application/vnd.oci.image.layer.v1.tar+gzip`, a
//!   tar archive holding one file, `plugin.wasm`.
//!
//! The result is written as an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/sha256/<hex>`), which `skopeo copy oci:DIR:TAG
//! docker://REGISTRY/NAME:TAG` or `oras cp --from-oci-layout` pushes as is.
//!
//! **Reproducible**: the tar entry (written and read with the `tar` crate)
//! has fixed metadata (mode 0644, uid/gid 0,
//! mtime 0, no user names), the gzip header has mtime 0 and no file name,
//! the JSON documents have a fixed key order and no timestamps. The same
//! `.wasm` always gives the same image digest.
//!
//! **Which digest goes into `WasmPlugin.sha256`**: for an `oci://` URL,
//! Istio's agent compares `sha256` with the digest of the image *manifest*
//! it pulled (`img.Digest()` in `PrepareFetch`, then `dChecksum !=
//! key.checksum` in `cache.go`), not with the `.wasm` file's hash — that
//! one is only used for `http(s)://` URLs. [`Image::digest_hex`] is the
//! former, [`Image::wasm_sha256`] the latter.

use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Media type of the image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the single layer (the compat variant's).
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the layout's `index.json`.
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The file Istio looks for inside the layer.
pub const PLUGIN_FILE: &str = "plugin.wasm";
/// The manifest annotation that marks the compat variant.
pub const VARIANT_ANNOTATION: &str = "module.wasm.image/variant";
/// The OCI annotation naming a manifest in a layout's `index.json`.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";

/// The five filters: artifact name (`<name>.wasm`, the contract), crate and
/// image name (`registry/wasmesh/<crate>`), and short aliases accepted on
/// the command line.
pub const FILTERS: &[Filter] = &[
    Filter {
        artifact: "jwt_authn",
        crate_name: "jwt-authn",
        aliases: &["jwt"],
    },
    Filter {
        artifact: "rbac",
        crate_name: "rbac",
        aliases: &[],
    },
    Filter {
        artifact: "header_router",
        crate_name: "header-router",
        aliases: &["router"],
    },
    Filter {
        artifact: "fault_injection",
        crate_name: "fault-injection",
        aliases: &["fault"],
    },
    Filter {
        artifact: "custom_metrics",
        crate_name: "custom-metrics",
        aliases: &["metrics"],
    },
];

/// One of our filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    /// `<artifact>.wasm`, e.g. `jwt_authn`.
    pub artifact: &'static str,
    /// The crate, also the image's repository name, e.g. `jwt-authn`.
    pub crate_name: &'static str,
    /// Other accepted spellings.
    pub aliases: &'static [&'static str],
}

impl Filter {
    /// Finds a filter by artifact name, crate name, alias, or a file name
    /// like `jwt_authn.wasm` (case-insensitive).
    pub fn find(name: &str) -> Option<Filter> {
        let n = name.trim().to_ascii_lowercase();
        let n = n.strip_suffix(".wasm").unwrap_or(&n);
        FILTERS.iter().copied().find(|f| {
            f.artifact == n
                || f.crate_name == n
                || f.aliases.contains(&n)
                || f.artifact.replace('_', "-") == n
        })
    }

    /// All accepted names, for error messages.
    pub fn names() -> String {
        FILTERS
            .iter()
            .map(|f| f.artifact)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A packaged image, in memory.
#[derive(Debug, Clone)]
pub struct Image {
    /// The tag recorded in the layout (`org.opencontainers.image.ref.name`).
    pub tag: String,
    /// The manifest bytes exactly as pushed (their sha256 is the image digest).
    pub manifest: Vec<u8>,
    /// The config blob.
    pub config: Vec<u8>,
    /// The layer blob (tar+gzip).
    pub layer: Vec<u8>,
    /// sha256 (hex) of the uncompressed tar (the config's `diff_ids`).
    pub diff_id: String,
    /// sha256 (hex) of the `.wasm` file.
    pub wasm_sha256: String,
}

impl Image {
    /// The image (manifest) digest, hex: the value for `WasmPlugin.sha256`
    /// with an `oci://` URL.
    pub fn digest_hex(&self) -> String {
        sha256_hex(&self.manifest)
    }

    /// `sha256:<hex>` of the manifest.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.digest_hex())
    }

    /// The blobs as (hex digest, bytes): config, layer, manifest.
    pub fn blobs(&self) -> [(String, &[u8]); 3] {
        [
            (sha256_hex(&self.config), &self.config),
            (sha256_hex(&self.layer), &self.layer),
            (sha256_hex(&self.manifest), &self.manifest),
        ]
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Whether `bytes` start like a WebAssembly binary (what Istio's agent
/// checks before it hands a module to Envoy).
pub fn is_wasm_binary(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm"
}

/// Builds the compat image of `wasm` for the filter (or any module) named
/// `title`. Pure: same inputs, same bytes.
pub fn build_image(title: &str, wasm: &[u8], tag: &str) -> Result<Image, String> {
    if !is_wasm_binary(wasm) {
        return Err("not a WebAssembly binary (no \\0asm header)".into());
    }
    let tar = tar_single_file(PLUGIN_FILE, wasm)?;
    let diff_id = sha256_hex(&tar);
    let layer = gzip(&tar)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    }))
    .map_err(|e| e.to_string())?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, &config),
        "layers": [descriptor(LAYER_MEDIA_TYPE, &layer)],
        "annotations": {
            VARIANT_ANNOTATION: "compat",
            "org.opencontainers.image.title": title,
        },
    }))
    .map_err(|e| e.to_string())?;
    Ok(Image {
        tag: tag.to_string(),
        manifest,
        config,
        layer,
        diff_id,
        wasm_sha256: sha256_hex(wasm),
    })
}

fn descriptor(media_type: &str, blob: &[u8]) -> serde_json::Value {
    json!({
        "mediaType": media_type,
        "digest": format!("sha256:{}", sha256_hex(blob)),
        "size": blob.len(),
    })
}

/// A ustar archive with one regular file and fixed metadata (written by the
/// `tar` crate).
fn tar_single_file(name: &str, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).map_err(|e| format!("tar header: {e}"))?;
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::with_capacity(512 + data.len() + 512 + 1024));
    b.mode(tar::HeaderMode::Deterministic);
    b.append(&h, data).map_err(|e| format!("tar: {e}"))?;
    b.into_inner().map_err(|e| format!("tar: {e}"))
}

fn gzip(data: &[u8]) -> Result<Vec<u8>, String> {
    // mtime 0, no file name, OS "unknown": nothing about the machine or time.
    let mut enc: GzEncoder<Vec<u8>> = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), Compression::best());
    enc.write_all(data).map_err(|e| e.to_string())?;
    enc.finish().map_err(|e| e.to_string())
}

/// Writes `image` as an OCI image layout in `dir` (created if needed). An
/// existing layout there is replaced: its `index.json` is rewritten and
/// blobs no longer referenced are removed.
pub fn write_layout(image: &Image, dir: &Path) -> Result<(), String> {
    let io = |e: std::io::Error, what: &Path| format!("{}: {e}", what.display());
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| io(e, &blobs))?;
    let mut keep = Vec::new();
    for (hex, bytes) in image.blobs() {
        let p = blobs.join(&hex);
        std::fs::write(&p, bytes).map_err(|e| io(e, &p))?;
        keep.push(hex);
    }
    if let Ok(rd) = std::fs::read_dir(&blobs) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !keep.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [{
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": image.digest(),
            "size": image.manifest.len(),
            "annotations": {REF_NAME_ANNOTATION: image.tag},
        }],
    }))
    .map_err(|e| e.to_string())?;
    let p = dir.join("index.json");
    std::fs::write(&p, index).map_err(|e| io(e, &p))?;
    let p = dir.join("oci-layout");
    std::fs::write(&p, br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(|e| io(e, &p))?;
    Ok(())
}

/// What `wasmesh package` did.
#[derive(Debug, Clone)]
pub struct Packaged {
    pub filter: Filter,
    pub wasm: PathBuf,
    pub out: PathBuf,
    pub image: Image,
}

/// The default tag: the workspace version.
pub const DEFAULT_TAG: &str = env!("CARGO_PKG_VERSION");

/// Packages `filter` from `wasm` (default: the artifact directory) into the
/// layout `out` (default: `target/oci/<artifact>` of the workspace).
pub fn package(
    filter: Filter,
    wasm: Option<&Path>,
    out: Option<&Path>,
    tag: &str,
) -> Result<Packaged, String> {
    validate_tag(tag)?;
    let wasm = match wasm {
        Some(p) => p.to_path_buf(),
        None => crate::scenario::default_wasm_dir().join(format!("{}.wasm", filter.artifact)),
    };
    let bytes = std::fs::read(&wasm).map_err(|e| {
        format!(
            "cannot read {}: {e} (build it with `bash scripts/build-wasm.sh`, or pass --wasm)",
            wasm.display()
        )
    })?;
    let image = build_image(filter.artifact, &bytes, tag)
        .map_err(|e| format!("{}: {e}", wasm.display()))?;
    let out = match out {
        Some(p) => p.to_path_buf(),
        None => crate::scenario::workspace_root()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("target/oci")
            .join(filter.artifact),
    };
    write_layout(&image, &out)?;
    Ok(Packaged {
        filter,
        wasm,
        out,
        image,
    })
}

/// OCI tag syntax: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag `{tag}`"))
    }
}

// ---- keeping the Istio manifests' `sha256` in sync -----------------------

/// One `WasmPlugin` whose `sha256` differs from the image `wasmesh package`
/// builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleDigest {
    pub file: PathBuf,
    pub plugin: String,
    pub filter: &'static str,
    pub written: String,
    pub expected: String,
}

/// Compares the `spec.sha256` of every `WasmPlugin` in the `.yaml` files of
/// `dir` with `digest(filter)` (the image digest of that filter), and with
/// `update` rewrites stale values in place (only the value on the `sha256:`
/// line changes; comments and layout stay). Returns the stale entries (all
/// of them, also when they were just rewritten).
pub fn sync_wasm_plugin_digests(
    dir: &Path,
    digest: &dyn Fn(Filter) -> Result<String, String>,
    update: bool,
) -> Result<Vec<StaleDigest>, String> {
    let mut stale = Vec::new();
    for file in crate::scenario::discover(&[dir.to_path_buf()]) {
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut out_docs = Vec::new();
        let mut changed = false;
        for chunk in split_yaml_docs(&text) {
            let doc: serde_yaml::Value = match serde_yaml::from_str(&chunk) {
                Ok(d) => d,
                Err(_) => {
                    out_docs.push(chunk);
                    continue;
                }
            };
            if doc.get("kind").and_then(|k| k.as_str()) != Some("WasmPlugin") {
                out_docs.push(chunk);
                continue;
            }
            let name = doc
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or("")
                .to_string();
            let spec = doc.get("spec").cloned().unwrap_or_default();
            let Some(filter) = crate::validate::filter_of_wasm_plugin(&spec) else {
                out_docs.push(chunk);
                continue;
            };
            let expected = digest(filter)?;
            let written = spec
                .get("sha256")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            if written == expected {
                out_docs.push(chunk);
                continue;
            }
            stale.push(StaleDigest {
                file: file.clone(),
                plugin: name.clone(),
                filter: filter.artifact,
                written,
                expected: expected.clone(),
            });
            if update {
                out_docs.push(replace_spec_sha256(&chunk, &expected).ok_or_else(|| {
                    format!(
                        "{}: WasmPlugin {name} has no `sha256:` line under spec",
                        file.display()
                    )
                })?);
                changed = true;
            } else {
                out_docs.push(chunk);
            }
        }
        if changed {
            std::fs::write(&file, out_docs.concat())
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    Ok(stale)
}

/// Splits YAML text into documents, each keeping its own `---` line, so that
/// concatenating them gives the text back.
fn split_yaml_docs(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" && !docs.last().is_some_and(|d| d.trim().is_empty()) {
            docs.push(String::new());
        }
        if let Some(d) = docs.last_mut() {
            d.push_str(line);
        }
    }
    docs
}

/// Replaces the value of the first indented `sha256:` line (the spec's).
fn replace_spec_sha256(doc: &str, hex: &str) -> Option<String> {
    let mut out = String::with_capacity(doc.len());
    let mut done = false;
    for line in doc.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if !done && !indent.is_empty() && trimmed.starts_with("sha256:") {
            let eol = if line.ends_with('\n') { "\n" } else { "" };
            out.push_str(&format!("{indent}sha256: {hex}{eol}"));
            done = true;
        } else {
            out.push_str(line);
        }
    }
    done.then_some(out)
}

// ---- reading images back (tests, and checks of pulled images) -----------

/// A layout read back from disk: the manifest `index.json` points at (for
/// `tag`, or the only one).
#[derive(Debug, Clone)]
pub struct LayoutImage {
    pub manifest: Vec<u8>,
    pub manifest_json: serde_json::Value,
    pub dir: PathBuf,
}

impl LayoutImage {
    /// Reads the manifest for `tag` (or the only manifest if `tag` is
    /// `None`) from the layout at `dir`, checking every digest on the way.
    pub fn open(dir: &Path, tag: Option<&str>) -> Result<LayoutImage, String> {
        let layout: serde_json::Value = read_json(&dir.join("oci-layout"))?;
        if layout["imageLayoutVersion"] != "1.0.0" {
            return Err(format!("{}: not an OCI image layout 1.0.0", dir.display()));
        }
        let index: serde_json::Value = read_json(&dir.join("index.json"))?;
        let manifests = index["manifests"]
            .as_array()
            .ok_or("index.json: no manifests")?;
        let entry = match tag {
            Some(t) => manifests
                .iter()
                .find(|m| m["annotations"][REF_NAME_ANNOTATION] == t)
                .ok_or_else(|| format!("index.json: no manifest tagged `{t}`"))?,
            None if manifests.len() == 1 => &manifests[0],
            None => return Err("index.json: several manifests, name a tag".into()),
        };
        let manifest = read_blob(dir, entry)?;
        let manifest_json: serde_json::Value =
            serde_json::from_slice(&manifest).map_err(|e| format!("manifest: {e}"))?;
        Ok(LayoutImage {
            manifest,
            manifest_json,
            dir: dir.to_path_buf(),
        })
    }

    /// `sha256:<hex>` of the manifest.
    pub fn digest(&self) -> String {
        format!("sha256:{}", sha256_hex(&self.manifest))
    }

    /// The Wasm module, extracted the way Istio's agent does for an OCI
    /// manifest: the *last* layer must be `tar+gzip`; the first tar entry
    /// whose base name is `plugin.wasm` is the module.
    pub fn plugin_wasm(&self) -> Result<Vec<u8>, String> {
        let layers = self.manifest_json["layers"]
            .as_array()
            .filter(|l| !l.is_empty())
            .ok_or("manifest: number of layers must be greater than zero")?;
        let last = &layers[layers.len() - 1];
        if last["mediaType"] != LAYER_MEDIA_TYPE {
            return Err(format!(
                "invalid media type {} (expect {LAYER_MEDIA_TYPE})",
                last["mediaType"]
            ));
        }
        let blob = read_blob(&self.dir, last)?;
        extract_plugin_wasm(&blob)
    }

    /// The config blob, parsed.
    pub fn config(&self) -> Result<serde_json::Value, String> {
        let blob = read_blob(&self.dir, &self.manifest_json["config"])?;
        serde_json::from_slice(&blob).map_err(|e| format!("config: {e}"))
    }
}

fn read_json(p: &Path) -> Result<serde_json::Value, String> {
    let b = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", p.display()))
}

/// Reads the blob a descriptor names and checks its size and digest.
fn read_blob(dir: &Path, desc: &serde_json::Value) -> Result<Vec<u8>, String> {
    let digest = desc["digest"].as_str().ok_or("descriptor without digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| format!("unsupported digest `{digest}`"))?;
    let p = dir.join("blobs/sha256").join(hex);
    let b = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    if sha256_hex(&b) != hex {
        return Err(format!("blob {digest}: content does not match its digest"));
    }
    if desc["size"].as_u64() != Some(b.len() as u64) {
        return Err(format!("blob {digest}: size differs from the descriptor"));
    }
    Ok(b)
}

/// Finds `plugin.wasm` in a tar+gzip layer (Istio's `extractWasmPluginBinary`):
/// the first regular file whose base name is `plugin.wasm`.
pub fn extract_plugin_wasm(layer: &[u8]) -> Result<Vec<u8>, String> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    let entries = archive
        .entries()
        .map_err(|e| format!("failed to parse layer as tar.gz: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("failed to parse layer as tar.gz: {e}"))?;
        let is_plugin = entry.header().entry_type().is_file()
            && entry
                .path()
                .ok()
                .and_then(|p| p.file_name().map(|n| n == PLUGIN_FILE))
                .unwrap_or(false);
        if is_plugin {
            let mut out = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut out)
                .map_err(|e| format!("tar: {e}"))?;
            return Ok(out);
        }
    }
    Err(format!("{PLUGIN_FILE} not found in the archive"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module() -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        m.extend((0..3000u32).map(|i| (i * 7 % 251) as u8));
        m
    }

    #[test]
    fn reproducible_and_extractable() {
        let a = build_image("rbac", &module(), "0.1.0").unwrap();
        let b = build_image("rbac", &module(), "0.1.0").unwrap();
        assert_eq!(a.manifest, b.manifest);
        assert_eq!(a.layer, b.layer);
        assert_eq!(a.digest(), b.digest());
        assert_eq!(extract_plugin_wasm(&a.layer).unwrap(), module());
        // A different module is a different image.
        let mut other = module();
        other[100] ^= 1;
        assert_ne!(
            build_image("rbac", &other, "0.1.0").unwrap().digest(),
            a.digest()
        );
        // The tag lives only in the layout's index, not in the image.
        assert_eq!(
            build_image("rbac", &module(), "latest").unwrap().digest(),
            a.digest()
        );
    }

    #[test]
    fn manifest_is_the_compat_variant() {
        let img = build_image("rbac", &module(), "0.1.0").unwrap();
        let m: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE);
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(m["layers"].as_array().unwrap().len(), 1);
        assert_eq!(m["layers"][0]["mediaType"], LAYER_MEDIA_TYPE);
        assert_eq!(m["annotations"][VARIANT_ANNOTATION], "compat");
        let c: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(
            c["rootfs"]["diff_ids"][0],
            format!("sha256:{}", img.diff_id)
        );
    }

    #[test]
    fn tar_header_is_fixed_ustar() {
        let tar = tar_single_file("plugin.wasm", b"abc").unwrap();
        assert_eq!(tar.len(), 512 + 512 + 1024);
        assert_eq!(&tar[..11], b"plugin.wasm");
        assert_eq!(&tar[100..108], b"0000644\0");
        assert_eq!(&tar[124..136], b"00000000003\0");
        assert_eq!(&tar[136..148], b"00000000000\0");
        assert_eq!(&tar[257..265], b"ustar\x0000");
        // The checksum field holds the sum of the header with it as spaces.
        let mut h = tar[..512].to_vec();
        let field = std::str::from_utf8(&h[148..156]).unwrap();
        let stored = u32::from_str_radix(field.trim_matches(['\0', ' ']), 8).unwrap();
        h[148..156].copy_from_slice(b"        ");
        assert_eq!(stored, h.iter().map(|&b| u32::from(b)).sum::<u32>());
        assert_eq!(&tar[512..515], b"abc");
        // The gzip header has no timestamp and no name.
        let gz = gzip(&tar).unwrap();
        assert_eq!(&gz[..4], &[0x1f, 0x8b, 8, 0]);
        assert_eq!(&gz[4..8], &[0, 0, 0, 0]);
    }

    #[test]
    fn refuses_non_wasm_and_finds_filters() {
        assert!(build_image("x", b"not wasm at all", "t").is_err());
        assert_eq!(Filter::find("jwt-authn").unwrap().artifact, "jwt_authn");
        assert_eq!(
            Filter::find("JWT_AUTHN.wasm").unwrap().artifact,
            "jwt_authn"
        );
        assert_eq!(Filter::find("router").unwrap().artifact, "header_router");
        assert_eq!(
            Filter::find("fault-injection").unwrap().artifact,
            "fault_injection"
        );
        assert!(Filter::find("probe").is_none());
        assert!(validate_tag("0.1.0").is_ok());
        assert!(validate_tag("-x").is_err());
        assert!(validate_tag("a/b").is_err());
    }

    #[test]
    fn layout_round_trip() {
        let dir = std::env::temp_dir().join(format!("wasmesh-pkg-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let img = build_image("rbac", &module(), "0.1.0").unwrap();
        write_layout(&img, &dir).unwrap();
        // A stale blob from an earlier image is removed.
        let stale = dir.join("blobs/sha256").join("0".repeat(64));
        std::fs::write(&stale, b"x").unwrap();
        write_layout(&img, &dir).unwrap();
        assert!(!stale.exists());
        let back = LayoutImage::open(&dir, Some("0.1.0")).unwrap();
        assert_eq!(back.digest(), img.digest());
        assert_eq!(back.plugin_wasm().unwrap(), module());
        assert_eq!(back.config().unwrap()["architecture"], "wasm");
        assert!(LayoutImage::open(&dir, Some("other")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
