//! `GET /metrics`: the supervisor's figures in Prometheus' text format.

use crate::control::{ContainerInfo, ContainerState, Health, Metrics};

/// The text exposition (version 0.0.4) of `m`.
pub fn render(m: &Metrics) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in rows {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    };
    let stack = escape(&m.stack);
    let label = |c: &ContainerInfo| format!("stack=\"{stack}\",container=\"{}\"", escape(&c.name));
    let each = |f: &dyn Fn(&crate::control::ContainerMetrics) -> Option<String>| {
        m.containers
            .iter()
            .filter_map(|c| f(c).map(|v| (label(&c.info), v)))
            .collect::<Vec<_>>()
    };
    family(
        "rkstack_container_up",
        "gauge",
        "1 when the container runs.",
        each(&|c| Some(u8::from(c.info.state == ContainerState::Running).to_string())),
    );
    // A StateSet: every state of every container, 1 for the one it is
    // in, so no series appears or vanishes as states change.
    family(
        "rkstack_container_state",
        "gauge",
        "The container's state (1 for the one it is in).",
        m.containers
            .iter()
            .flat_map(|c| {
                ContainerState::ALL.iter().map(move |st| {
                    (
                        format!("{},state=\"{st}\"", label(&c.info)),
                        u8::from(c.info.state == *st).to_string(),
                    )
                })
            })
            .collect(),
    );
    family(
        "rkstack_container_oom_kills_total",
        "counter",
        "Processes of the container killed by the out-of-memory killer (its cgroup's count).",
        each(&|c| c.oom_kills.map(|n| n.to_string())),
    );
    family(
        "rkstack_container_memory_limit_bytes",
        "gauge",
        "The container's memory limit (containers with one).",
        each(&|c| c.memory_limit.map(|n| n.to_string())),
    );
    family(
        "rkstack_container_start_time_seconds",
        "gauge",
        "When the container's present run started (Unix time).",
        each(&|c| c.started_at.map(|t| format!("{t:.3}"))),
    );
    family(
        "rkstack_container_restarts_total",
        "counter",
        "Restarts by the restart policy.",
        each(&|c| Some(c.info.restarts.to_string())),
    );
    family(
        "rkstack_container_cpu_seconds_total",
        "counter",
        "CPU time used by the container's cgroup in this run.",
        each(&|c| c.info.cpu_seconds.map(|v| format!("{v:.6}"))),
    );
    family(
        "rkstack_container_memory_bytes",
        "gauge",
        "Memory used by the container's cgroup.",
        each(&|c| c.info.memory_bytes.map(|v| v.to_string())),
    );
    family(
        "rkstack_container_pids",
        "gauge",
        "Processes in the container's cgroup.",
        each(&|c| c.info.pids.map(|v| v.to_string())),
    );
    family(
        "rkstack_container_healthy",
        "gauge",
        "1 when the container's health check passes (containers with one).",
        each(&|c| {
            c.info
                .health
                .map(|h| u8::from(h == Health::Healthy).to_string())
        }),
    );
    family(
        "rkstack_reloads_total",
        "counter",
        "Reloads of the stack file (file change, SIGHUP, API).",
        vec![(format!("stack=\"{stack}\""), m.reloads.to_string())],
    );
    family(
        "rkstack_last_reload_success",
        "gauge",
        "1 when the last reload was applied, 0 when it was rejected.",
        vec![(
            format!("stack=\"{stack}\""),
            u8::from(m.last_reload_ok).to_string(),
        )],
    );
    family(
        "rkstack_build_info",
        "gauge",
        "The running rkstack's version (always 1).",
        vec![(
            format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
            "1".into(),
        )],
    );
    out
}

/// A label value as the text format wants it: `\`, `"` and newlines
/// escaped (stack and container names cannot hold them today; a label
/// must stay one line whatever they become).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{ContainerMetrics, Exit};

    #[test]
    fn every_state_is_a_series_and_only_known_figures_are_written() {
        let mut running = ContainerInfo::created("web");
        running.state = ContainerState::Running;
        running.health = Some(Health::Healthy);
        let mut down = ContainerInfo::created("db");
        down.state = ContainerState::Exited;
        down.last_exit = Some(Exit::Oom);
        let m = Metrics {
            stack: "demo".into(),
            containers: vec![
                ContainerMetrics {
                    info: running,
                    oom_kills: Some(2),
                    memory_limit: Some(64 << 20),
                    started_at: Some(1.5),
                },
                ContainerMetrics {
                    info: down,
                    oom_kills: None,
                    memory_limit: None,
                    started_at: None,
                },
            ],
            reloads: 3,
            last_reload_ok: true,
        };
        let t = render(&m);
        assert!(t.contains("rkstack_container_up{stack=\"demo\",container=\"web\"} 1\n"));
        assert!(t.contains(
            "rkstack_container_state{stack=\"demo\",container=\"db\",state=\"exited\"} 1\n"
        ));
        assert_eq!(
            t.lines()
                .filter(|l| l.starts_with("rkstack_container_state{"))
                .count(),
            2 * ContainerState::ALL.len()
        );
        assert!(
            t.contains("rkstack_container_oom_kills_total{stack=\"demo\",container=\"web\"} 2\n")
        );
        assert!(!t.contains("rkstack_container_oom_kills_total{stack=\"demo\",container=\"db\"}"));
        assert!(t.contains("rkstack_container_healthy{stack=\"demo\",container=\"web\"} 1\n"));
        assert!(t.contains("rkstack_reloads_total{stack=\"demo\"} 3\n"));
        assert!(t.contains(
            "rkstack_container_start_time_seconds{stack=\"demo\",container=\"web\"} 1.500\n"
        ));
    }
}
