//! Parse + validate + plan of a 1,000-container stack file.
//! `cargo bench --bench check_plan` prints the median of 50 runs of each phase.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use rkstack::{config, plan};

fn stack(n: usize) -> String {
    let mut s = String::from(
        "name = \"big\"\n[defaults]\nrestart = \"always\"\nresources = { memory = \"64M\", pids = 64 }\n",
    );
    for net in 0..4 {
        s.push_str(&format!(
            "[networks.net{net}]\nsubnet = \"10.{}.0.0/16\"\n",
            100 + net
        ));
    }
    for i in 0..n {
        let net = i % 4;
        s.push_str(&format!(
            "[containers.c{i}]\nimage = \"host\"\ncommand = [\"/bin/sleep\", \"infinity\"]\nenv = {{ ID = \"{i}\" }}\n\
             networks = {{ net{net} = {{ ip = \"10.{}.{}.{}\" }} }}\nports = [\"{}:80\"]\n\
             mounts = [{{ type = \"tmpfs\", target = \"/tmp\", size = \"8M\" }}]\n\
             security = {{ capabilities = {{ drop = [\"ALL\"], add = [\"NET_BIND_SERVICE\"] }} }}\n\
             health = {{ command = [\"/bin/true\"], interval = \"5s\" }}\n",
            100 + net,
            i / 200,
            i % 200 + 2,
            10000 + i
        ));
        if i > 0 {
            s.push_str(&format!("depends_on = [\"c{}\"]\n", i / 2));
        }
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let src = stack(1000);
    // `cargo bench --bench check_plan -- --write FILE` saves the stack file,
    // to time the whole `rkstack check FILE` process as well.
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write") {
        let path = args.get(i + 1).expect("--write FILE");
        std::fs::write(path, &src).expect("write the stack file");
        return;
    }
    let file = Path::new("/bench/big.toml");
    let runs = 50;
    let (mut check, mut planning, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let t0 = Instant::now();
        let s = config::parse(black_box(&src), file).unwrap_or_else(|e| panic!("{e}"));
        let t1 = Instant::now();
        let d = plan::DesiredState::from_stack(s);
        let observed = plan::ObservedState::from_desired(&d);
        let p = plan::reconcile(&d, &observed);
        black_box(p.to_string());
        let t2 = Instant::now();
        check.push(t1 - t0);
        planning.push(t2 - t1);
        total.push(t2 - t0);
    }
    println!(
        "1000 containers ({} KiB): check {:.1?}, plan {:.1?}, check+plan {:.1?} (median of {runs})",
        src.len() / 1024,
        median(check),
        median(planning),
        median(total)
    );
}
