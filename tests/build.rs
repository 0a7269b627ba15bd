//! `rkstack build`'s parts that touch the kernel, as root: a layer made
//! from a real overlayfs upper folder — whiteouts, an opaque folder, hard
//! links, extended attributes — the same bytes every time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::io::Read;
use std::process::Command;

use common::*;
use rkstack::image::build::layer;
use rkstack::image::store::Store;

#[test]
fn a_steps_layer_carries_whiteouts_opaque_folders_links_and_xattrs_the_same_every_time() {
    require_root!();
    let w = tempfile::tempdir().unwrap();
    let d = |p: &str| w.path().join(p);
    for dir in ["lower/etc", "lower/data", "upper", "work", "merged"] {
        std::fs::create_dir_all(d(dir)).unwrap();
    }
    std::fs::write(d("lower/etc/gone"), "old").unwrap();
    std::fs::write(d("lower/etc/kept"), "kept").unwrap();
    std::fs::write(d("lower/data/old"), "old").unwrap();
    // What a RUN step would do, in a mount namespace of its own.
    let script = format!(
        "mount -t overlay overlay -o lowerdir={l},upperdir={u},workdir={wk} {m} && \
         rm {m}/etc/gone && rm -r {m}/data && mkdir {m}/data && echo new > {m}/data/new && \
         echo hello > {m}/etc/file && ln {m}/etc/file {m}/etc/link && ln -s file {m}/etc/sym && \
         mkfifo {m}/etc/fifo && umount {m}",
        l = d("lower").display(),
        u = d("upper").display(),
        wk = d("work").display(),
        m = d("merged").display()
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let file = d("upper/etc/file");
    let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
    // SAFETY: NUL-terminated name, path and a value of its length.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            c"user.origin".as_ptr(),
            b"test".as_ptr().cast(),
            4,
            0,
        )
    };
    assert_eq!(r, 0, "user xattrs on this filesystem");

    let store = Store::open(&d("store")).unwrap();
    let one = layer::write(&d("upper"), &store, 0).unwrap();
    // Times change, bytes do not: the same layer.
    Command::new("touch").arg(&file).status().unwrap();
    let two = layer::write(&d("upper"), &store, 0).unwrap();
    assert_eq!(one, two);

    let mut gz = Vec::new();
    std::fs::File::open(store.blob_path(&one.blob))
        .unwrap()
        .read_to_end(&mut gz)
        .unwrap();
    assert_eq!(gz.len() as u64, one.size);
    let mut tar_bytes = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut tar_bytes)
        .unwrap();
    assert_eq!(rkstack::image::store::Digest::of(&tar_bytes), one.diff_id);
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    let mut seen = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().display().to_string();
        let kind = e.header().entry_type();
        assert_eq!(e.header().mtime().unwrap(), 0, "{path}");
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let xattr = e
            .pax_extensions()
            .unwrap()
            .into_iter()
            .flatten()
            .flatten()
            .any(|x| x.key() == Ok("SCHILY.xattr.user.origin") && x.value_bytes() == b"test");
        let mut line = format!("{path} {kind:?}");
        if !link.is_empty() {
            line.push_str(&format!(" {link}"));
        }
        if xattr {
            line.push_str(" xattr");
        }
        seen.push(line);
    }
    eprintln!("{seen:#?}");
    assert_eq!(
        seen,
        [
            "data Directory",
            "data/.wh..wh..opq Regular",
            "data/new Regular",
            "etc Directory",
            "etc/.wh.gone Regular",
            "etc/fifo Fifo",
            "etc/file Regular xattr",
            "etc/link Link etc/file",
            "etc/sym Symlink file",
        ]
    );
}

/// A build context: a busybox root under `rootfs/` (for `FROM scratch` +
/// `COPY rootfs/ /`), the files the Containerfile copies, an ignore file.
struct Ctx {
    dir: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl Ctx {
    fn new(containerfile: &str) -> Ctx {
        let dir = tempfile::tempdir().unwrap();
        let fs = Rootfs::new();
        let copied = Command::new("cp")
            .arg("-a")
            .arg(fs.path())
            .arg(dir.path().join("rootfs"))
            .status()
            .unwrap();
        assert!(copied.success());
        std::fs::write(dir.path().join("rootfs/etc/doomed"), "to be deleted").unwrap();
        std::fs::create_dir_all(dir.path().join("app/cache")).unwrap();
        std::fs::write(dir.path().join("app/main.sh"), "echo main\n").unwrap();
        std::fs::write(dir.path().join("app/cache/junk"), "junk").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "app/cache\n").unwrap();
        // A gzip tar for ADD to unpack.
        let tar = Command::new("sh")
            .arg("-c")
            .arg("mkdir -p t/inner && echo unpacked > t/inner/file && tar -C t -czf files.tar.gz inner && rm -r t")
            .current_dir(dir.path())
            .status()
            .unwrap();
        assert!(tar.success());
        std::fs::write(dir.path().join("Containerfile"), containerfile).unwrap();
        Ctx {
            dir,
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn rk(&self) -> Command {
        let mut c = Command::new(rkstack());
        c.arg("--data-dir")
            .arg(self.data.path())
            .arg("--state-dir")
            .arg(self.data.path().join("state"));
        c
    }

    fn build(&self, extra: &[&str]) -> std::process::Output {
        let mut c = self.rk();
        c.arg("build").args(extra).arg(self.dir.path());
        c.output().unwrap()
    }

    /// Runs `cmd` in a container of image `image`; its stdout.
    fn run(&self, image: &str, cmd: &[&str]) -> String {
        let out = self
            .rk()
            .args(["run", "--name", &unique("b"), image, "--"])
            .args(cmd)
            .output()
            .unwrap();
        assert!(out.status.success(), "run {cmd:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

const APP: &str = r#"# syntax=docker/dockerfile:1
ARG BASE_DIR=rootfs
FROM scratch AS base
ARG BASE_DIR
COPY ${BASE_DIR}/ /

FROM base AS builder
RUN echo built > /artifact && echo "from the $(echo builder)"

FROM base
ARG GREETING=hello
ENV APP_HOME=/srv/app
WORKDIR $APP_HOME
COPY --chown=app:app --chmod=0750 app/ ./
COPY --from=builder /artifact /opt/artifact
ADD files.tar.gz /opt/unpacked/
RUN echo "$GREETING" > greeting && rm /etc/doomed && echo "said $GREETING"
USER app
RUN echo "uid at build: $(id -u)"
LABEL org.opencontainers.image.title="demo"
EXPOSE 8080
CMD ["/bin/cat", "greeting"]
"#;

fn digest_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_multi_stage_build_runs_copies_caches_and_is_reproducible() {
    require_root!();
    let c = Ctx::new(APP);
    let first = c.build(&["-t", "demo:1", "--build-arg", "GREETING=hi"]);
    let progress = stderr(&first);
    assert!(first.status.success(), "{progress}");
    // Progress: one line per step, the steps' own output streamed.
    assert!(progress.contains("[1/"), "{progress}");
    assert!(
        progress.contains("] RUN echo built > /artifact"),
        "{progress}"
    );
    assert!(progress.contains("from the builder"), "{progress}");
    assert!(progress.contains("said hi"), "{progress}");
    assert!(
        progress.contains("uid at build: 1000"),
        "USER by name: {progress}"
    );
    let digest = digest_of(&first);
    assert!(digest.starts_with("sha256:"), "{digest}");

    // What the image holds, seen by a container of it (run by its name).
    let image = "localhost/demo:1";
    assert_eq!(c.run(image, &[]), "hi\n", "its CMD, in its WORKDIR");
    let ls = c.run(
        image,
        &["/bin/sh", "-c", "stat -c '%u:%g %a %n' /srv/app/main.sh; ls /srv/app; cat /opt/artifact /opt/unpacked/inner/file; ls /etc; id -u"],
    );
    assert!(ls.contains("1000:1000 750 /srv/app/main.sh"), "{ls}");
    assert!(!ls.contains("cache"), "the ignored folder was copied: {ls}");
    assert!(ls.contains("built\nunpacked\n"), "{ls}");
    assert!(
        !ls.contains("doomed"),
        "a file deleted in a later step is there: {ls}"
    );
    assert!(ls.ends_with("1000\n"), "USER app: {ls}");

    // Nothing changed: nothing runs, the same image.
    let again = c.build(&["-t", "demo:1", "--build-arg", "GREETING=hi"]);
    let p = stderr(&again);
    assert!(again.status.success(), "{p}");
    assert!(p.contains(" 0 ran,"), "{p}");
    assert!(!p.contains("from the builder"), "{p}");
    assert_eq!(digest_of(&again), digest);

    // One copied file changed: its step and those after it run again.
    std::fs::write(c.dir.path().join("app/main.sh"), "echo changed\n").unwrap();
    let changed = c.build(&["--build-arg", "GREETING=hi"]);
    let p = stderr(&changed);
    assert!(changed.status.success(), "{p}");
    assert!(
        !p.contains("from the builder"),
        "an earlier stage ran again: {p}"
    );
    assert!(p.contains("said hi"), "{p}");
    assert_ne!(digest_of(&changed), digest);

    // Two builds that read no cache give one digest.
    let a = c.build(&["--no-cache", "--build-arg", "GREETING=hi"]);
    let b = c.build(&["--no-cache", "--build-arg", "GREETING=hi"]);
    assert!(a.status.success() && b.status.success(), "{}", stderr(&b));
    assert!(stderr(&a).contains("from the builder"));
    assert_eq!(digest_of(&a), digest_of(&b));
    assert_eq!(digest_of(&a), digest_of(&changed));

    // --target: the builder stage alone.
    let t = c.build(&["--target", "builder", "-t", "demo:builder"]);
    assert!(t.status.success(), "{}", stderr(&t));
    assert_eq!(
        c.run("localhost/demo:builder", &["/bin/cat", "/artifact"]),
        "built\n"
    );
}

#[test]
fn a_failing_run_step_says_why_and_names_nothing() {
    require_root!();
    let c = Ctx::new(
        "FROM scratch\nCOPY rootfs/ /\nRUN echo first line && echo the last words && exit 3\n",
    );
    let out = c.build(&["-t", "broken:1"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Containerfile:3: RUN echo first line"),
        "{err}"
    );
    assert!(err.contains("exit code 3"), "{err}");
    assert!(
        err.contains("its last lines of output:\n  first line\n  the last words"),
        "{err}"
    );
    let images = c.rk().args(["images"]).output().unwrap();
    assert!(!String::from_utf8_lossy(&images.stdout).contains("broken"));

    // An instruction rkstack does not build: an error with its line.
    let c = Ctx::new("FROM scratch\nHEALTHCHECK CMD true\n");
    let out = c.build(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 2"), "{}", stderr(&out));
}

/// A built image pushed to a registry on loopback (Debian's
/// docker-registry): small blobs in one request, a big one in chunks, a
/// second push finds them there, a push to another repository mounts them;
/// pulled back by rkstack and read by skopeo, it has the same digest.
#[test]
fn a_built_image_is_pushed_and_pulled_back_unchanged() {
    require_root!();
    let c = Ctx::new("FROM scratch\nCOPY rootfs/ /\nCOPY big /big\nCMD [\"/bin/true\"]\n");
    // 9 MiB that do not compress: a layer bigger than one upload chunk.
    let mut big = vec![0u8; 9 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in big.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(c.dir.path().join("big"), &big).unwrap();
    let built = c.build(&["-t", "pushme:1"]);
    assert!(built.status.success(), "{}", stderr(&built));
    let digest = digest_of(&built);

    let reg = common::oci::Registry::start();
    let dest = format!("docker://{}/team/pushme:1", reg.host());
    let push = |what: &str, to: &str| {
        c.rk()
            .args(["--insecure-registry", &reg.host(), "push", what, to])
            .output()
            .unwrap()
    };
    let out = push("pushme:1", &dest);
    let said = stderr(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("uploaded (1 request)"), "{said}");
    assert!(
        said.contains("uploaded (3 requests)"),
        "the big layer in chunks: {said}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&digest));
    let again = push("localhost/pushme:1", &dest);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!stderr(&again).contains("uploaded"), "{}", stderr(&again));

    // Pulled back by rkstack, into a store of its own and into this one.
    let other = tempfile::tempdir().unwrap();
    for data in [other.path(), c.data.path()] {
        let pulled = Command::new(rkstack())
            .arg("--data-dir")
            .arg(data)
            .args(["--insecure-registry", &reg.host(), "pull", &dest])
            .output()
            .unwrap();
        assert!(pulled.status.success(), "{}", stderr(&pulled));
        assert!(
            String::from_utf8_lossy(&pulled.stdout).contains(&digest),
            "{}",
            String::from_utf8_lossy(&pulled.stdout)
        );
    }
    // And by skopeo.
    let inspect = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &dest])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "{}", stderr(&inspect));
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["Digest"], digest.as_str());

    // This store now knows the blobs are in team/pushme: another
    // repository of the registry mounts them.
    let mounted = push("pushme:1", &format!("docker://{}/elsewhere:1", reg.host()));
    let said = stderr(&mounted);
    assert!(mounted.status.success(), "{said}");
    assert!(said.contains("mounted from another repository"), "{said}");
    assert!(!said.contains("uploaded"), "{said}");
}

/// A stack whose container's image is built from a context: `up` builds
/// it in a clean store; a change in the context shows in `plan` as the
/// container recreated, and a reload builds it again and recreates it.
#[test]
fn a_stack_builds_its_image_and_builds_it_again_when_its_context_changes() {
    require_root!();
    let c = Ctx::new(
        "FROM scratch\nCOPY rootfs/ /\nCOPY msg /msg\nCMD [\"/bin/sh\", \"-c\", \"cat /msg; exec sleep 1000\"]\n",
    );
    std::fs::write(c.dir.path().join("msg"), "first version\n").unwrap();
    let name = unique("bst");
    let stack = c.data.path().join("stack.toml");
    std::fs::write(
        &stack,
        format!(
            "name = \"{name}\"\n[containers.svc]\nimage = \"localhost/{name}:1\"\nbuild = \"{}\"\nstop_signal = \"SIGKILL\"\n",
            c.dir.path().display()
        ),
    )
    .unwrap();
    let events = c.data.path().join("events.log");
    let up = c
        .rk()
        .arg("up")
        .arg(&stack)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&events).unwrap())
        .spawn()
        .unwrap();
    let _up = Stopped(up);
    let logs = || {
        let o = c
            .rk()
            .args(["--stack", &name, "logs", "svc"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let said = || std::fs::read_to_string(&events).unwrap_or_default();
    wait_until(
        || logs().contains("first version"),
        "the built container's output",
        said,
    );
    assert!(said().contains("svc: building localhost/"), "{}", said());

    // Nothing changed: the plan has nothing to do.
    let plan = |c: &Ctx| {
        let o = c
            .rk()
            .args(["--stack", &name, "plan"])
            .arg(&stack)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(!plan(&c).contains("recreate"), "{}", plan(&c));
    std::fs::write(c.dir.path().join("msg"), "second version\n").unwrap();
    let p = plan(&c);
    assert!(p.contains("recreate") && p.contains("svc"), "{p}");
    let reload = c.rk().args(["--stack", &name, "reload"]).output().unwrap();
    assert!(reload.status.success(), "{}", stderr(&reload));
    wait_until(
        || logs().contains("second version"),
        "the rebuilt container's output",
        said,
    );
}

/// What the config instructions set is in the image's config; a build
/// starts from an image built before (by its name); `RUN` sees loopback
/// only unless `--network host`; `ADD` of a URL is refused, saying so.
#[test]
fn config_instructions_names_networks_and_urls() {
    require_root!();
    let c = Ctx::new(
        "FROM scratch\nCOPY rootfs/ /\nLABEL team=\"edge\" tier=web\nEXPOSE 8080 53/udp\nSTOPSIGNAL SIGINT\nVOLUME /data\nENTRYPOINT [\"/bin/echo\", \"ep\"]\n",
    );
    let base = c.build(&["-t", "cfgbase:1"]);
    assert!(base.status.success(), "{}", stderr(&base));
    // Built on by its name, then written out as an OCI layout.
    std::fs::write(
        c.dir.path().join("Containerfile"),
        "FROM cfgbase:1\nRUN cat /proc/net/dev\nCMD [\"x\"]\n",
    )
    .unwrap();
    let layout = c.data.path().join("layout");
    let out = c.build(&["--output", &format!("oci:{}:v1", layout.display())]);
    let p = stderr(&out);
    assert!(out.status.success(), "{p}");
    // The interfaces /proc/net/dev listed in the step's output.
    let interfaces = |progress: &str| -> Vec<String> {
        progress
            .lines()
            .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim().to_string()))
            .filter(|n| {
                !n.is_empty()
                    && n.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
            })
            .collect()
    };
    assert_eq!(interfaces(&p), ["lo"], "{p}");
    let host = c.build(&["--no-cache", "--network", "host"]);
    assert!(host.status.success(), "{}", stderr(&host));
    assert!(interfaces(&stderr(&host)).len() > 1, "{}", stderr(&host));

    let read = |p: &std::path::Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = read(&layout.join("index.json"));
    let m = &index["manifests"][0];
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "v1");
    let manifest = read(&blob(m["digest"].as_str().unwrap()));
    let config = read(&blob(manifest["config"]["digest"].as_str().unwrap()));
    let cfg = &config["config"];
    assert_eq!(cfg["Labels"]["team"], "edge");
    assert_eq!(cfg["Labels"]["tier"], "web");
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object(), "{cfg}");
    assert!(cfg["ExposedPorts"]["53/udp"].is_object(), "{cfg}");
    assert_eq!(cfg["StopSignal"], "SIGINT");
    assert!(cfg["Volumes"]["/data"].is_object(), "{cfg}");
    assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/echo", "ep"]));
    assert_eq!(cfg["Cmd"], serde_json::json!(["x"]));
    assert_eq!(config["created"], "1970-01-01T00:00:00.000Z");
    // A history entry per step; the ones with layers match the layers.
    let history = config["history"].as_array().unwrap();
    let with_layers = history
        .iter()
        .filter(|h| h["empty_layer"] != serde_json::json!(true))
        .count();
    assert_eq!(with_layers, manifest["layers"].as_array().unwrap().len());
    assert_eq!(
        c.run("localhost/cfgbase:1", &[]),
        "ep\n",
        "the base's ENTRYPOINT with no CMD"
    );

    std::fs::write(
        c.dir.path().join("Containerfile"),
        "FROM scratch\nADD https://example.com/app.tar.gz /app/\n",
    )
    .unwrap();
    let url = c.build(&[]);
    assert_eq!(url.status.code(), Some(2), "{}", stderr(&url));
    assert!(
        stderr(&url).contains("line 2: ADD https://example.com/app.tar.gz: URLs are not fetched"),
        "{}",
        stderr(&url)
    );
    // Named through a variable, it is refused when the step comes.
    std::fs::write(
        c.dir.path().join("Containerfile"),
        "FROM scratch\nARG SRC=https://example.com/app.tar.gz\nADD $SRC /app/\n",
    )
    .unwrap();
    let url = c.build(&[]);
    assert_eq!(url.status.code(), Some(1), "{}", stderr(&url));
    assert!(
        stderr(&url).contains("ADD of a URL is not supported"),
        "{}",
        stderr(&url)
    );
}

/// An earlier stage's root is an image's: `COPY --from` follows its links
/// inside it, as if it were `/` — `/e -> /etc` leads to the stage's own
/// `/etc`, whose folder the host does not have — never to the host's.
#[test]
fn copy_from_a_stage_follows_its_links_inside_the_stage() {
    require_root!();
    let probe = format!("rkstack-probe-{}", std::process::id());
    assert!(!std::path::Path::new("/etc").join(&probe).exists());
    let c = Ctx::new(&format!(
        "FROM scratch AS s\nCOPY rootfs/ /\nRUN /bin/busybox mkdir /etc/{probe} && echo in-the-stage > /etc/{probe}/f && /bin/busybox ln -s /etc /e\n\
         FROM s\nCOPY --from=s /e/{probe}/ /x/\nCOPY --from=s /e/{probe}/f /y\n"
    ));
    let out = c.build(&["-t", "linked:1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        c.run("localhost/linked:1", &["/bin/cat", "/x/f", "/y"]),
        "in-the-stage\nin-the-stage\n"
    );
}
