//! Limits written the cgroup v2 way: one unified tree, `memory.max`,
//! `cpu.max`, `io.max`, ... in the container's own folder.

use super::*;

impl Cgroup {
    pub(super) fn apply_v2(&self, l: &Limits) -> Result<(), CgroupError> {
        let num = |v: Option<u64>, max: &str| v.map_or(max.to_string(), |n| n.to_string());
        if l.memory.is_some() || self.dir_has("memory.max") {
            self.write("memory", "memory.max", &num(l.memory, "max"), "memory")?;
        }
        if l.memory_low.is_some() || self.dir_has("memory.low") {
            self.write(
                "memory",
                "memory.low",
                &num(l.memory_low, "0"),
                "memory_reservation",
            )?;
        }
        if l.pids.is_some() || self.dir_has("pids.max") {
            self.write("pids", "pids.max", &num(l.pids, "max"), "pids")?;
        }
        if l.cpus.is_some() || self.dir_has("cpu.max") {
            let quota = l.cpus.map_or("max".to_string(), |c| {
                ((c * CPU_PERIOD as f64).round() as u64)
                    .max(1000)
                    .to_string()
            });
            self.write("cpu", "cpu.max", &format!("{quota} {CPU_PERIOD}"), "cpus")?;
        }
        if l.cpu_weight.is_some() || self.dir_has("cpu.weight") {
            self.write(
                "cpu",
                "cpu.weight",
                &l.cpu_weight.unwrap_or(100).to_string(),
                "cpu_weight",
            )?;
        }
        if let Some(c) = &l.cpuset {
            self.write("cpuset", "cpuset.cpus", c, "cpuset")?;
        }
        if l.io_weight.is_some() || self.dir_has("io.weight") {
            self.write(
                "io",
                "io.weight",
                &format!("default {}", l.io_weight.unwrap_or(100)),
                "io_weight",
            )?;
        }
        for d in &l.io {
            let f = |k: &str, v: Option<u64>| format!("{k}={}", num(v, "max"));
            let line = format!(
                "{}:{} {} {} {} {}",
                d.major,
                d.minor,
                f("rbps", d.read_bps),
                f("wbps", d.write_bps),
                f("riops", d.read_iops),
                f("wiops", d.write_iops)
            );
            self.write("io", "io.max", &line, "io_limits")?;
        }
        Ok(())
    }
}
