//! Docker/OCI JSON seccomp profiles (`seccomp = "/path/profile.json"`),
//! compiled with the container's capabilities.

use super::*;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    arch_map: Vec<ArchMap>,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rule {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    name: Option<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<Arg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

pub(super) fn arch(name: &str) -> Option<ScmpArch> {
    let n = name.trim_start_matches("SCMP_ARCH_");
    Some(match n {
        "X86_64" | "amd64" => ScmpArch::X8664,
        "X86" | "x86" => ScmpArch::X86,
        "X32" | "x32" => ScmpArch::X32,
        "AARCH64" | "arm64" => ScmpArch::Aarch64,
        "ARM" | "arm" => ScmpArch::Arm,
        "RISCV64" | "riscv64" => ScmpArch::Riscv64,
        "PPC64LE" | "ppc64le" => ScmpArch::Ppc64Le,
        "S390X" | "s390x" => ScmpArch::S390X,
        _ => return None,
    })
}

pub(super) fn action(
    name: &str,
    errno: Option<u32>,
    default_errno: Option<u32>,
) -> Option<ScmpAction> {
    let errno = i32::try_from(errno.or(default_errno).unwrap_or(libc::EPERM as u32)).ok()?;
    Some(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(u16::try_from(errno).ok()?),
        _ => return None,
    })
}

pub(super) fn compare(a: &Arg) -> Option<ScmpArgCompare> {
    let op = match a.op.as_str() {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        "SCMP_CMP_MASKED_EQ" => {
            return Some(ScmpArgCompare::new(
                a.index,
                ScmpCompareOp::MaskedEqual(a.value),
                a.value_two,
            ));
        }
        _ => return None,
    };
    Some(ScmpArgCompare::new(a.index, op, a.value))
}

/// Reads and compiles a Docker/OCI JSON profile for a container holding `capabilities`.
pub fn profile_file(path: &Path, capabilities: &[String]) -> Result<Vec<u8>, SeccompError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| SeccompError::Read {
        path: p.clone(),
        source,
    })?;
    let prof: Profile = serde_json::from_str(&text).map_err(|e| SeccompError::Parse {
        path: p.clone(),
        message: e.to_string(),
    })?;
    let invalid = |message: String| SeccompError::Invalid {
        path: p.clone(),
        message,
    };
    let default = action(&prof.default_action, None, prof.default_errno_ret)
        .ok_or_else(|| invalid(format!("unknown defaultAction {:?}", prof.default_action)))?;
    let mut ctx = new_filter(default)?;
    let native = ScmpArch::native();
    let mut arches: Vec<ScmpArch> = Vec::new();
    for m in &prof.arch_map {
        if arch(&m.architecture) == Some(native) {
            arches.push(native);
            arches.extend(m.sub_architectures.iter().filter_map(|a| arch(a)));
        }
    }
    if arches.is_empty() {
        arches = prof.architectures.iter().filter_map(|a| arch(a)).collect();
    }
    if arches.is_empty() {
        add_host_arches(&mut ctx)?;
    }
    for a in arches {
        if !ctx.is_arch_present(a).map_err(lib)? {
            ctx.add_arch(a).map_err(lib)?;
        }
    }
    let caps: HashSet<&str> = capabilities.iter().map(String::as_str).collect();
    let native_name = format!("{native:?}").to_lowercase();
    for (i, r) in prof.syscalls.iter().enumerate() {
        let applies = r.includes.caps.iter().all(|c| caps.contains(c.as_str()))
            && (r.includes.arches.is_empty()
                || r.includes.arches.iter().any(|a| arch(a) == Some(native)))
            && !r.excludes.caps.iter().any(|c| caps.contains(c.as_str()))
            && !r
                .excludes
                .arches
                .iter()
                .any(|a| arch(a) == Some(native) || a.to_lowercase() == native_name);
        if !applies {
            continue;
        }
        let act = action(&r.action, r.errno_ret, prof.default_errno_ret)
            .ok_or_else(|| invalid(format!("syscalls[{i}]: unknown action {:?}", r.action)))?;
        if act == default {
            continue;
        }
        let cmps: Vec<ScmpArgCompare> = match &r.args {
            Some(args) => args
                .iter()
                .map(|a| {
                    compare(a)
                        .ok_or_else(|| invalid(format!("syscalls[{i}]: unknown op {:?}", a.op)))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        for name in r.names.iter().chain(r.name.iter()) {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let res = if cmps.is_empty() {
                ctx.add_rule(act, sc)
            } else {
                ctx.add_rule_conditional(act, sc, &cmps)
            };
            res.map_err(|e| invalid(format!("syscalls[{i}] {name}: {e}")))?;
        }
    }
    export(&ctx)
}
