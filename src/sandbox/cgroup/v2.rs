//! Limits written the cgroup v2 way: one unified tree, `memory.max`,
//! `cpu.max`, `io.max`, ... in the container's own folder.

use super::*;

impl Cgroup {
    pub(super) fn apply_v2(&self, l: &Limits, new: bool) -> Result<(), CgroupError> {
        let num = |v: Option<u64>, max: &str| v.map_or(max.to_string(), |n| n.to_string());
        // Each limit: written when set; when unset, put back to its default
        // where the file says otherwise (see `reset`); a new group has them.
        let set =
            |controller: &str, file: &str, v: Option<String>, default: &str, what: &str| match v {
                Some(v) => self.write(controller, file, &v, what),
                None if !new && self.dir_has(file) => {
                    self.reset(controller, file, default, what, &|now| now == default)
                }
                None => Ok(()),
            };
        let string = |n: u64| n.to_string();
        set(
            "memory",
            "memory.max",
            l.memory.map(string),
            "max",
            "memory",
        )?;
        let low = l.memory_low.map(string);
        set("memory", "memory.low", low, "0", "memory_reservation")?;
        set("pids", "pids.max", l.pids.map(string), "max", "pids")?;
        let quota = l.cpus.map(|c| {
            let q = ((c * CPU_PERIOD as f64).round() as u64).max(1000);
            format!("{q} {CPU_PERIOD}")
        });
        set(
            "cpu",
            "cpu.max",
            quota,
            &format!("max {CPU_PERIOD}"),
            "cpus",
        )?;
        let weight = l.cpu_weight.map(|w| w.to_string());
        set("cpu", "cpu.weight", weight, "100", "cpu_weight")?;
        if let Some(c) = &l.cpuset {
            self.write("cpuset", "cpuset.cpus", c, "cpuset")?;
        }
        if l.io_weight.is_some() || !new && self.dir_has("io.weight") {
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
