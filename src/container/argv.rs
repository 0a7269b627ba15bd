//! What a container runs: the stack file's `entrypoint` and `command`
//! combined with its image's Entrypoint and Cmd, as docker and compose do.

/// The process's arguments, or `None` when nothing names a program.
///
/// - `command` replaces the image's Cmd, after the image's Entrypoint;
/// - `entrypoint` replaces the image's Entrypoint, and then the image's Cmd
///   is not used (only `command`, if any) — setting an entrypoint resets
///   the command, as `docker run --entrypoint` does;
/// - an empty `entrypoint` clears the image's.
pub fn argv(
    entrypoint: Option<&[String]>,
    command: Option<&[String]>,
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
) -> Option<Vec<String>> {
    let (ep, cmd): (&[String], &[String]) = match (entrypoint, command) {
        (Some(ep), cmd) => (ep, cmd.unwrap_or_default()),
        (None, Some(cmd)) => (image_entrypoint.unwrap_or_default(), cmd),
        (None, None) => (
            image_entrypoint.unwrap_or_default(),
            image_cmd.unwrap_or_default(),
        ),
    };
    let all: Vec<String> = ep.iter().chain(cmd).cloned().collect();
    (!all.is_empty()).then_some(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn entrypoint_and_command_combine_as_docker_does() {
        let (iep, icmd) = (v(&["/bin/echo", "EP"]), v(&["default"]));
        let img = |e, c| argv(e, c, Some(iep.as_slice()), Some(icmd.as_slice()));
        // Nothing set: the image's Entrypoint and Cmd.
        assert_eq!(img(None, None), Some(v(&["/bin/echo", "EP", "default"])));
        // command replaces Cmd only.
        let hello = v(&["hello"]);
        assert_eq!(
            img(None, Some(hello.as_slice())),
            Some(v(&["/bin/echo", "EP", "hello"]))
        );
        // entrypoint replaces Entrypoint and drops the image's Cmd.
        let sh = v(&["/bin/sh", "-c"]);
        assert_eq!(img(Some(sh.as_slice()), None), Some(sh.clone()));
        let script = v(&["echo hi"]);
        assert_eq!(
            img(Some(sh.as_slice()), Some(script.as_slice())),
            Some(v(&["/bin/sh", "-c", "echo hi"]))
        );
        // An empty entrypoint clears the image's: the command alone.
        assert_eq!(img(Some(&[]), Some(hello.as_slice())), Some(hello.clone()));
        assert_eq!(img(Some(&[]), None), None);
        // No image config: what the file says.
        assert_eq!(argv(None, Some(hello.as_slice()), None, None), Some(hello));
        assert_eq!(argv(None, None, None, None), None);
    }
}
