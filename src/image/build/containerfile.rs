//! Containerfiles (Dockerfiles), read as buildah and docker read them:
//! parser directives (`# escape=`, `# syntax=`) before anything else, line
//! continuations with the escape character, comments (also inside a
//! continued instruction), instructions in any case, exec (JSON) and
//! shell forms. Every instruction rkstack does not build is an error with
//! its line number, never ignored. Pure: no files, no processes.

use std::collections::BTreeMap;

/// A command: `["a", "b"]` (exec form) or `a b` (shell form, run by
/// `/bin/sh -c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    Exec(Vec<String>),
    Shell(String),
}

/// What a `COPY` or an `ADD` copies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    /// `--from=STAGE|IMAGE` (COPY only).
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub sources: Vec<String>,
    pub dest: String,
}

/// One instruction after `FROM`, its words as written (variables are
/// expanded when the build reaches it, see [`expand`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instr {
    Run(Cmd),
    Copy(Copy),
    /// `ADD`: like COPY; a local tar archive is unpacked.
    Add(Copy),
    Env(Vec<(String, String)>),
    Arg(String, Option<String>),
    Workdir(String),
    User(String),
    Entrypoint(Cmd),
    Cmd(Cmd),
    Label(Vec<(String, String)>),
    Expose(Vec<String>),
    StopSignal(String),
    Volume(Vec<String>),
}

/// An instruction with where it is and how it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Its first line, from 1.
    pub line: usize,
    /// The instruction as one line (continuations joined): what progress
    /// prints.
    pub text: String,
    pub instr: Instr,
}

/// `FROM IMAGE [AS NAME]` and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub line: usize,
    /// The base, as written (`scratch`, an image, an earlier stage's name).
    pub from: String,
    pub name: Option<String>,
    pub steps: Vec<Step>,
}

/// A whole Containerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Containerfile {
    /// `ARG`s before the first `FROM` (they may be used in `FROM` lines).
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
}

/// A problem with a line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Instructions docker knows and rkstack does not build.
const UNSUPPORTED: &[&str] = &["HEALTHCHECK", "ONBUILD", "SHELL", "MAINTAINER"];

/// Reads a Containerfile.
pub fn parse(text: &str) -> Result<Containerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let (escape, first) = directives(&lines)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let start = i;
        let trimmed = lines[i].trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        // Joins continued lines; comment lines inside are dropped.
        let mut joined = String::new();
        loop {
            let line = lines[i];
            let t = line.trim_end();
            if i != start && t.trim_start().starts_with('#') {
                i += 1;
                if i >= lines.len() {
                    break;
                }
                continue;
            }
            match t.strip_suffix(escape) {
                Some(head) => {
                    joined.push_str(head);
                    i += 1;
                    if i >= lines.len() {
                        break;
                    }
                }
                None => {
                    joined.push_str(t);
                    i += 1;
                    break;
                }
            }
        }
        let line = start + 1;
        let joined = joined.trim().to_string();
        let (word, rest) = match joined.split_once(char::is_whitespace) {
            Some((w, r)) => (w.to_ascii_uppercase(), r.trim().to_string()),
            None => (joined.to_ascii_uppercase(), String::new()),
        };
        if word == "FROM" {
            stages.push(from(line, &rest)?);
            continue;
        }
        if word == "ARG" && stages.is_empty() {
            global_args.push(arg(line, &rest)?);
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            return Err(err(line, format!("{word} before the first FROM")));
        };
        let instr = instruction(line, &word, &rest)?;
        stage.steps.push(Step {
            line,
            text: format!("{word} {rest}").trim().to_string(),
            instr,
        });
    }
    if stages.is_empty() {
        return Err(err(lines.len().max(1), "no FROM: nothing to build"));
    }
    Ok(Containerfile {
        global_args,
        stages,
    })
}

/// The parser directives at the top: the escape character and the first
/// line after them.
fn directives(lines: &[&str]) -> Result<(char, usize), ParseError> {
    let mut escape = '\\';
    let mut seen = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(body) = l.trim().strip_prefix('#') else {
            return Ok((escape, i));
        };
        let Some((key, value)) = body.split_once('=') else {
            return Ok((escape, i));
        };
        let key = key.trim().to_ascii_lowercase();
        if key.contains(char::is_whitespace) || key.is_empty() {
            return Ok((escape, i));
        }
        if seen.contains(&key) {
            return Err(err(i + 1, format!("the {key} directive is given twice")));
        }
        match key.as_str() {
            "escape" => {
                escape = match value.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    v => {
                        return Err(err(i + 1, format!("escape={v}: only \\ or ` can be")));
                    }
                };
            }
            // The frontend's image: rkstack reads the file itself.
            "syntax" | "check" => {}
            _ => return Ok((escape, i)),
        }
        seen.push(key);
    }
    Ok((escape, lines.len()))
}

fn from(line: usize, rest: &str) -> Result<Stage, ParseError> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    if let Some(flag) = words.iter().find(|w| w.starts_with("--")) {
        return Err(err(line, format!("FROM {flag}: not supported")));
    }
    let (from, name) = match words.as_slice() {
        [image] => (image.to_string(), None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
            (image.to_string(), Some(name.to_ascii_lowercase()))
        }
        _ => return Err(err(line, "FROM takes IMAGE [AS NAME]")),
    };
    Ok(Stage {
        line,
        from,
        name,
        steps: Vec::new(),
    })
}

fn arg(line: usize, rest: &str) -> Result<(String, Option<String>), ParseError> {
    let (name, default) = match rest.split_once('=') {
        Some((n, d)) => (n.trim(), Some(unquote(d.trim()))),
        None => (rest.trim(), None),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(err(
            line,
            format!("ARG {rest}: expected NAME or NAME=DEFAULT"),
        ));
    }
    Ok((name.to_string(), default))
}

fn instruction(line: usize, word: &str, rest: &str) -> Result<Instr, ParseError> {
    let need = |what: &str| -> Result<(), ParseError> {
        if rest.is_empty() {
            Err(err(line, format!("{word} needs {what}")))
        } else {
            Ok(())
        }
    };
    Ok(match word {
        "RUN" => {
            need("a command")?;
            Instr::Run(cmd(rest))
        }
        "CMD" => {
            need("a command")?;
            Instr::Cmd(cmd(rest))
        }
        "ENTRYPOINT" => {
            need("a command")?;
            Instr::Entrypoint(cmd(rest))
        }
        "COPY" | "ADD" => {
            let c = copy(line, word, rest)?;
            if word == "ADD" {
                Instr::Add(c)
            } else {
                Instr::Copy(c)
            }
        }
        "ENV" => Instr::Env(pairs(line, word, rest, true)?),
        "LABEL" => Instr::Label(pairs(line, word, rest, false)?),
        "ARG" => {
            let (n, d) = arg(line, rest)?;
            Instr::Arg(n, d)
        }
        "WORKDIR" => {
            need("a path")?;
            Instr::Workdir(rest.to_string())
        }
        "USER" => {
            need("a user")?;
            Instr::User(rest.to_string())
        }
        "EXPOSE" => {
            need("a port")?;
            Instr::Expose(rest.split_whitespace().map(String::from).collect())
        }
        "STOPSIGNAL" => {
            need("a signal")?;
            Instr::StopSignal(rest.to_string())
        }
        "VOLUME" => {
            need("a path")?;
            Instr::Volume(match json_array(rest) {
                Some(v) => v,
                None => rest.split_whitespace().map(String::from).collect(),
            })
        }
        w if UNSUPPORTED.contains(&w) => {
            return Err(err(line, format!("{w} is not supported by rkstack build")));
        }
        w => return Err(err(line, format!("unknown instruction {w}"))),
    })
}

/// `["a", "b"]` as a list of strings, when it is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

fn cmd(rest: &str) -> Cmd {
    match json_array(rest) {
        Some(v) => Cmd::Exec(v),
        None => Cmd::Shell(rest.to_string()),
    }
}

fn copy(line: usize, word: &str, rest: &str) -> Result<Copy, ParseError> {
    let mut c = Copy::default();
    let mut words: Vec<String> = Vec::new();
    let mut flags = true;
    let mut body = rest.trim();
    while flags {
        match body.split_once(char::is_whitespace) {
            Some((w, r)) if w.starts_with("--") => {
                flag(line, word, w, &mut c)?;
                body = r.trim_start();
            }
            None if body.starts_with("--") => {
                flag(line, word, body, &mut c)?;
                body = "";
            }
            _ => flags = false,
        }
    }
    match json_array(body) {
        Some(v) => words.extend(v),
        None => words.extend(body.split_whitespace().map(String::from)),
    }
    if words.len() < 2 {
        return Err(err(
            line,
            format!("{word} needs a source and a destination"),
        ));
    }
    c.dest = words.pop().unwrap_or_default();
    for s in &words {
        if s.contains("://") {
            return Err(err(
                line,
                format!("{word} {s}: URLs are not fetched (download it into the context)"),
            ));
        }
    }
    c.sources = words;
    Ok(c)
}

fn flag(line: usize, word: &str, f: &str, c: &mut Copy) -> Result<(), ParseError> {
    let (k, v) = f
        .split_once('=')
        .ok_or_else(|| err(line, format!("{word} {f}: expected --NAME=VALUE")))?;
    match (k, word) {
        ("--from", "COPY") => c.from = Some(v.to_string()),
        ("--chown", _) => c.chown = Some(v.to_string()),
        ("--chmod", _) => c.chmod = Some(v.to_string()),
        _ => return Err(err(line, format!("{word} {k}: not supported"))),
    }
    Ok(())
}

/// `K=V K2="v 2"` pairs; with `legacy`, also `K V W` (ENV's old form: the
/// rest of the line is the value).
fn pairs(
    line: usize,
    word: &str,
    rest: &str,
    legacy: bool,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = split_quoted(rest).map_err(|e| err(line, format!("{word}: {e}")))?;
    if words.is_empty() {
        return Err(err(line, format!("{word} needs KEY=VALUE")));
    }
    if legacy && !words[0].contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(k.to_string(), unquote(v.trim()))]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| err(line, format!("{word} {w}: expected KEY=VALUE")))
        })
        .collect()
}

/// Splits on whitespace outside quotes, the quotes removed (a backslash
/// escapes the next character).
fn split_quoted(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(ch) = chars.next() {
        match (ch, quote) {
            ('\\', q) if q != Some('\'') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    any = true;
                }
            }
            (q @ ('"' | '\''), None) => {
                quote = Some(q);
                any = true;
            }
            (q, Some(open)) if q == open => quote = None,
            (c, None) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (c, _) => {
                cur.push(c);
                any = true;
            }
        }
    }
    if quote.is_some() {
        return Err("an unclosed quote".into());
    }
    if any {
        out.push(cur);
    }
    Ok(out)
}

fn unquote(s: &str) -> String {
    split_quoted(s)
        .ok()
        .filter(|w| w.len() == 1)
        .and_then(|mut w| w.pop())
        .unwrap_or_else(|| s.to_string())
}

/// Expands `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alt}`
/// from `vars` (unset: empty), as the instructions that take variables do;
/// `\$` is a dollar.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            let close = chars[i + 2..]
                .iter()
                .position(|&c| c == '}')
                .ok_or_else(|| format!("{s}: an unclosed ${{"))?;
            let inner: String = chars[i + 2..i + 2 + close].iter().collect();
            let (name, op) = match inner.find(':') {
                Some(p) => (&inner[..p], Some(&inner[p..])),
                None => (inner.as_str(), None),
            };
            if name.is_empty() || !name.chars().all(name_char) {
                return Err(format!("{s}: ${{{inner}}} is not a variable"));
            }
            let value = vars.get(name).filter(|v| !v.is_empty());
            match op {
                None => out.push_str(value.map_or("", String::as_str)),
                Some(o) if o.starts_with(":-") => match value {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&expand(&o[2..], vars)?),
                },
                Some(o) if o.starts_with(":+") => {
                    if value.is_some() {
                        out.push_str(&expand(&o[2..], vars)?);
                    }
                }
                Some(o) => return Err(format!("{s}: ${{{name}{o}}}: only :- and :+ are known")),
            }
            i += 3 + close;
            continue;
        }
        let len = chars[i + 1..].iter().take_while(|&&c| name_char(c)).count();
        if len == 0 {
            out.push('$');
            i += 1;
            continue;
        }
        let name: String = chars[i + 1..i + 1 + len].iter().collect();
        out.push_str(vars.get(&name).map_or("", String::as_str));
        i += 1 + len;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Containerfile {
        parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn fails(text: &str) -> String {
        parse(text).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn stages_instructions_and_both_command_forms() {
        let f = ok("\
# syntax=docker/dockerfile:1
ARG BASE=alpine
FROM $BASE AS build
run apk add \\
    # a comment inside
    make
COPY --chown=app:app --chmod=0644 a b /dst/
ENV A=1 B=\"two words\"
ENV LEGACY value with spaces
WORKDIR /src
USER app
FROM scratch
COPY --from=build /out /out
LABEL org.opencontainers.image.title=demo
EXPOSE 80/tcp 443
STOPSIGNAL SIGINT
VOLUME [\"/data\"]
ENTRYPOINT [\"/out\", \"-v\"]
CMD serve --port 80
");
        assert_eq!(
            f.global_args,
            [("BASE".to_string(), Some("alpine".to_string()))]
        );
        assert_eq!(f.stages.len(), 2);
        let b = &f.stages[0];
        assert_eq!(
            (b.from.as_str(), b.name.as_deref(), b.line),
            ("$BASE", Some("build"), 3)
        );
        assert_eq!(
            b.steps[0].instr,
            Instr::Run(Cmd::Shell("apk add     make".into()))
        );
        assert_eq!(b.steps[0].line, 4);
        assert_eq!(
            b.steps[1].instr,
            Instr::Copy(Copy {
                from: None,
                chown: Some("app:app".into()),
                chmod: Some("0644".into()),
                sources: vec!["a".into(), "b".into()],
                dest: "/dst/".into(),
            })
        );
        assert_eq!(
            b.steps[2].instr,
            Instr::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into())
            ])
        );
        assert_eq!(
            b.steps[3].instr,
            Instr::Env(vec![("LEGACY".into(), "value with spaces".into())])
        );
        let s = &f.stages[1];
        assert!(matches!(&s.steps[0].instr, Instr::Copy(c) if c.from.as_deref() == Some("build")));
        assert_eq!(s.steps[3].instr, Instr::StopSignal("SIGINT".into()));
        assert_eq!(s.steps[4].instr, Instr::Volume(vec!["/data".into()]));
        assert_eq!(
            s.steps[5].instr,
            Instr::Entrypoint(Cmd::Exec(vec!["/out".into(), "-v".into()]))
        );
        assert_eq!(
            s.steps[6].instr,
            Instr::Cmd(Cmd::Shell("serve --port 80".into()))
        );
        assert_eq!(s.steps[6].text, "CMD serve --port 80");
    }

    #[test]
    fn the_escape_directive_changes_the_continuation() {
        let f = ok("# escape=`\nFROM scratch\nRUN echo a `\n  b\\c\n");
        assert_eq!(
            f.stages[0].steps[0].instr,
            Instr::Run(Cmd::Shell("echo a   b\\c".into()))
        );
        // A directive after a comment is a comment.
        let f = ok("# hello\n# escape=`\nFROM scratch\nRUN a \\\n b\n");
        assert_eq!(
            f.stages[0].steps[0].instr,
            Instr::Run(Cmd::Shell("a  b".into()))
        );
    }

    #[test]
    fn anything_not_built_is_an_error_with_its_line() {
        assert_eq!(
            fails("FROM a\nHEALTHCHECK CMD true\n"),
            "line 2: HEALTHCHECK is not supported by rkstack build"
        );
        assert_eq!(
            fails("FROM a\nFROBNICATE\n"),
            "line 2: unknown instruction FROBNICATE"
        );
        assert_eq!(fails("RUN true\n"), "line 1: RUN before the first FROM");
        assert_eq!(fails("# nothing\n"), "line 1: no FROM: nothing to build");
        assert_eq!(
            fails("FROM a\nADD https://example.org/x /x\n"),
            "line 2: ADD https://example.org/x: URLs are not fetched (download it into the context)"
        );
        assert_eq!(
            fails("FROM a\nADD --from=b x /x\n"),
            "line 2: ADD --from: not supported"
        );
        assert_eq!(
            fails("FROM --platform=linux/arm64 a\n"),
            "line 1: FROM --platform=linux/arm64: not supported"
        );
        assert_eq!(
            fails("FROM a\nCOPY onlyone\n"),
            "line 2: COPY needs a source and a destination"
        );
        assert_eq!(
            fails("FROM a\nENV A=\"open\n"),
            "line 2: ENV: an unclosed quote"
        );
        assert_eq!(
            fails("# escape=x\nFROM a\n"),
            "line 1: escape=x: only \\ or ` can be"
        );
    }

    #[test]
    fn variables_expand_as_docker_does() {
        let vars = BTreeMap::from([
            ("A".to_string(), "one".to_string()),
            ("EMPTY".to_string(), String::new()),
        ]);
        let e = |s: &str| expand(s, &vars).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e("$A/${A}x"), "one/onex");
        assert_eq!(e("${NOPE:-def}-${A:-def}"), "def-one");
        assert_eq!(e("${A:+alt}-${EMPTY:+alt}-${NOPE}"), "alt--");
        assert_eq!(e("cost \\$5 $"), "cost $5 $");
        assert!(expand("${A", &vars).is_err());
        assert!(expand("${A:?x}", &vars).is_err());
    }
}
