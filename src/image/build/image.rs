//! The image a build makes: its OCI config — what `ENV`, `WORKDIR`,
//! `USER`, `ENTRYPOINT`, `CMD`, `LABEL`, `EXPOSE`, `STOPSIGNAL` and
//! `VOLUME` set, on top of the base's — and its manifest, written to the
//! store. Nothing depends on the machine or the time: `created` is the
//! epoch given (`SOURCE_DATE_EPOCH`), so is every history entry's, and
//! JSON keys are sorted, so one build gives one digest anywhere. The
//! history has an entry per step (those without a layer marked
//! `empty_layer`), as docker and buildah write it and read it back: they
//! refuse to build on an image whose history does not account for its
//! layers.

use serde_json::{Map, Value, json};

use crate::image::store::{Digest, Store, StoreError};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// A layer as a manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub media_type: String,
}

/// A config being built.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config's `config` object (Env, Cmd, ...).
    config: Map<String, Value>,
    architecture: String,
    diff_ids: Vec<String>,
    /// The base's history, then (step text, whether it made a layer).
    base_history: Vec<Value>,
    history: Vec<(String, bool)>,
}

impl Config {
    /// `FROM scratch`.
    pub fn scratch() -> Config {
        Config {
            config: Map::new(),
            architecture: crate::image::oci::host_arch().to_string(),
            diff_ids: Vec::new(),
            base_history: Vec::new(),
            history: Vec::new(),
        }
    }

    /// `FROM` an image whose config is `base`: its settings and layers go on.
    pub fn from_base(base: &Value) -> Config {
        let config = base["config"].as_object().cloned().unwrap_or_default();
        let diff_ids: Vec<String> = base["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Config {
            config,
            architecture: base["architecture"]
                .as_str()
                .unwrap_or(crate::image::oci::host_arch())
                .to_string(),
            base_history: base_history(base, diff_ids.len()),
            diff_ids,
            history: Vec::new(),
        }
    }

    /// A step in the history: its text, and whether it made a layer.
    pub fn note(&mut self, step: &str, layer: bool) {
        self.history.push((step.to_string(), layer));
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.config
            .get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The environment as `KEY=VALUE`, in order.
    pub fn env(&self) -> Vec<String> {
        self.strings("Env")
    }

    /// `ENV KEY=VALUE`: replaces the key's value where it is set.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let mut env = self.env();
        let entry = format!("{key}={value}");
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(e) => *e = entry,
            None => env.push(entry),
        }
        self.config.insert("Env".into(), json!(env));
    }

    /// A text setting, when set and not empty.
    fn text(&self, key: &str) -> Option<String> {
        self.config
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    }

    pub fn workdir(&self) -> Option<String> {
        self.text("WorkingDir")
    }

    /// `WORKDIR`: a relative path is taken from the one before.
    pub fn set_workdir(&mut self, dir: &str) {
        let dir = if dir.starts_with('/') {
            dir.to_string()
        } else {
            format!(
                "{}/{dir}",
                self.workdir()
                    .unwrap_or_else(|| "/".into())
                    .trim_end_matches('/')
            )
        };
        self.config.insert("WorkingDir".into(), json!(dir));
    }

    pub fn user(&self) -> Option<String> {
        self.text("User")
    }

    pub fn set_user(&mut self, user: &str) {
        self.config.insert("User".into(), json!(user));
    }

    /// `ENTRYPOINT`: as docker does, a `CMD` of the base no longer applies.
    pub fn set_entrypoint(&mut self, argv: Vec<String>) {
        self.config.insert("Entrypoint".into(), json!(argv));
        self.config.remove("Cmd");
    }

    pub fn set_cmd(&mut self, argv: Vec<String>) {
        self.config.insert("Cmd".into(), json!(argv));
    }

    fn set_in(&mut self, key: &str, name: &str, value: Value) {
        let entry = self
            .config
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Some(m) = entry.as_object_mut() {
            m.insert(name.to_string(), value);
        }
    }

    pub fn set_label(&mut self, key: &str, value: &str) {
        self.set_in("Labels", key, json!(value));
    }

    /// `EXPOSE 80` or `80/udp` (tcp when no protocol is named).
    pub fn expose(&mut self, port: &str) {
        let port = if port.contains('/') {
            port.to_string()
        } else {
            format!("{port}/tcp")
        };
        self.set_in("ExposedPorts", &port, json!({}));
    }

    pub fn set_stop_signal(&mut self, signal: &str) {
        self.config.insert("StopSignal".into(), json!(signal));
    }

    pub fn add_volume(&mut self, path: &str) {
        self.set_in("Volumes", path, json!({}));
    }

    /// A layer on top (its uncompressed digest).
    pub fn push_layer(&mut self, diff_id: &Digest) {
        self.diff_ids.push(diff_id.to_string());
    }

    /// The config's JSON, `created` at `epoch` (seconds since 1970).
    pub fn json(&self, epoch: u64) -> Value {
        let created =
            crate::time::timestamp(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch));
        let mut history = self.base_history.clone();
        for (step, layer) in &self.history {
            let mut h =
                json!({ "created": created, "created_by": step, "comment": "rkstack build" });
            if !layer {
                h["empty_layer"] = json!(true);
            }
            history.push(h);
        }
        json!({
            "created": created,
            "architecture": self.architecture,
            "os": "linux",
            "config": self.config,
            "rootfs": { "type": "layers", "diff_ids": self.diff_ids },
            "history": history,
        })
    }

    /// Writes the config and a manifest of `layers` (bottom first) to
    /// `store`; the manifest's digest.
    pub fn write(&self, store: &Store, layers: &[Blob], epoch: u64) -> Result<Digest, StoreError> {
        let put = |bytes: Vec<u8>| -> Result<(Digest, u64), StoreError> {
            let d = Digest::of(&bytes);
            let n = bytes.len() as u64;
            store.put(&d, &bytes[..])?;
            Ok((d, n))
        };
        let (config, config_size) = put(serde_json::to_vec(&self.json(epoch)).unwrap_or_default())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": { "mediaType": CONFIG, "digest": config.to_string(), "size": config_size },
            "layers": layers
                .iter()
                .map(|b| json!({ "mediaType": b.media_type, "digest": b.digest.to_string(), "size": b.size }))
                .collect::<Vec<_>>(),
        });
        Ok(put(serde_json::to_vec(&manifest).unwrap_or_default())?.0)
    }
}

/// The history of a base image with `layers` layers: its own where it
/// accounts for every layer, else one entry per layer (an image written
/// without history).
fn base_history(base: &Value, layers: usize) -> Vec<Value> {
    let h = base["history"].as_array().cloned().unwrap_or_default();
    let with_layer = h
        .iter()
        .filter(|e| e["empty_layer"].as_bool() != Some(true))
        .count();
    if with_layer == layers {
        return h;
    }
    (0..layers)
        .map(|i| json!({ "created_by": format!("layer {} of the base", i + 1) }))
        .collect()
}

/// A `CMD` or `ENTRYPOINT` as the config holds it: the exec form as it
/// is, the shell form run by `/bin/sh -c`.
pub fn argv(cmd: &super::containerfile::Cmd) -> Vec<String> {
    match cmd {
        super::containerfile::Cmd::Exec(v) => v.clone(),
        super::containerfile::Cmd::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_config_reads_back_and_one_build_gives_one_digest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = Store::open(&dir.path().join("images")).unwrap_or_else(|e| panic!("{e}"));
        let layer = b"pretend this is a gzip";
        let blob = Digest::of(layer);
        store
            .put(&blob, &layer[..])
            .unwrap_or_else(|e| panic!("{e}"));
        let base = json!({
            "architecture": "amd64",
            "config": { "Env": ["PATH=/bin", "A=base"], "Cmd": ["sh"] },
            "rootfs": { "type": "layers", "diff_ids": ["sha256:aa"] },
        });
        let mut c = Config::from_base(&base);
        c.set_env("A", "mine");
        c.set_env("B", "two words");
        c.set_workdir("/srv");
        c.set_workdir("app");
        c.set_user("app");
        c.set_entrypoint(vec!["/serve".into()]);
        c.set_label("org.opencontainers.image.title", "demo");
        c.expose("80");
        c.expose("53/udp");
        c.set_stop_signal("SIGINT");
        c.add_volume("/data");
        c.push_layer(&Digest::of(b"tar"));
        let layers = [Blob {
            digest: blob,
            size: layer.len() as u64,
            media_type: LAYER.into(),
        }];
        let m = c
            .write(&store, &layers, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            m,
            c.write(&store, &layers, 0)
                .unwrap_or_else(|e| panic!("{e}"))
        );
        let image = crate::image::oci::from_store(&store, &m).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(image.defaults.env, ["PATH=/bin", "A=mine", "B=two words"]);
        assert_eq!(image.defaults.workdir.as_deref(), Some("/srv/app"));
        assert_eq!(image.defaults.user.as_deref(), Some("app"));
        assert_eq!(image.defaults.entrypoint, ["/serve"]);
        assert!(
            image.defaults.cmd.is_empty(),
            "ENTRYPOINT ends the base's CMD"
        );
        let j = c.json(0);
        assert_eq!(j["created"], "1970-01-01T00:00:00.000Z");
        assert_eq!(j["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(2));
        assert_eq!(j["config"]["ExposedPorts"]["53/udp"], json!({}));
        assert_eq!(j["config"]["ExposedPorts"]["80/tcp"], json!({}));
        let shell = argv(&super::super::containerfile::Cmd::Shell("echo hi".into()));
        assert_eq!(shell, ["/bin/sh", "-c", "echo hi"]);
    }
}
