// The official PostgREST clients (postgrest-js, postgrest-py) calling functions of the real binary.
//
// The client code lives in tests/clients/ (`node --test` and pytest suites);
// this test starts `pgrpc` in its embedded default, creates the functions those
// suites call, makes an app_user token with `pgrpc token`, runs both suites
// against it with PGRPC_URL/PGRPC_TOKEN, and fails with their output if either
// fails. The libraries come from their registries through
// tests/clients/setup.sh; without them the test says so and passes, unless
// TESTS_REQUIRE_TOOLS=1 (CI) makes their absence a failure.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::Gateway;
use crate::process::psql_target;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Both suites together take about a second; a hang must not stall CI.
const SUITE_LIMIT: Duration = Duration::from_secs(90);

/// The functions the client suites call, with the grants the gateway needs.
const FIXTURES: &str = "
create function api.add(a int, b int default 1) returns int
  language sql immutable as $$ select a + b $$;
create function api.hello(name text) returns text
  language sql stable as $$ select 'Hello, ' || name $$;
create function api.points(n int) returns table(x int, y int)
  language sql immutable as $$ select i, i * i from generate_series(1, n) i $$;
create function api.numbers(n int) returns setof int
  language sql immutable as $$ select generate_series(1, n) $$;
create function api.arr_len(xs int[]) returns int
  language sql immutable as $$ select cardinality(xs) $$;
create function api.nothing() returns void
  language sql volatile as $$ select $$;
create function api.raise_plain() returns int
  language plpgsql volatile as $$
begin
  raise exception 'plain failure' using detail = 'some detail', hint = 'some hint';
end $$;
-- Created last: once it is callable, the reloaded cache holds all of them.
create function api.whoami() returns text
  language sql stable as $$ select current_user::text $$;
grant execute on function api.add(int, int), api.hello(text), api.points(int),
  api.numbers(int), api.arr_len(int[]), api.nothing(), api.raise_plain(),
  api.whoami() to web_anon, app_user;
";

/// What the suites need on this machine, or why it is not there.
struct Tools {
    js_dir: PathBuf,
    py_dir: PathBuf,
    python: PathBuf,
}

fn find_tools() -> Result<Tools, String> {
    let root = Path::new(ROOT);
    let js_dir = root.join("tests/clients/js");
    let py_dir = root.join("tests/clients/py");
    let python = root.join("target/pyenv-clients/bin/python");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .map_err(|e| format!("node: {e}"))?;
    if !node.status.success() {
        return Err("node --version failed".into());
    }
    if !js_dir
        .join("node_modules/@supabase/postgrest-js/package.json")
        .is_file()
    {
        return Err("@supabase/postgrest-js is not installed in tests/clients/js".into());
    }
    let import = Command::new(&python)
        .args(["-c", "import postgrest, pytest"])
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !import.success() {
        return Err(format!(
            "{} cannot import postgrest and pytest",
            python.display()
        ));
    }
    Ok(Tools {
        js_dir,
        py_dir,
        python,
    })
}

/// Said on the real stderr: libtest captures `println!`, and a skip that
/// nobody sees is how a suite silently stops running.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// One client suite, run as a child process with its output in a file.
struct Suite {
    name: &'static str,
    child: Child,
    out: PathBuf,
}

impl Suite {
    fn spawn(name: &'static str, mut cmd: Command, out: PathBuf, url: &str, token: &str) -> Suite {
        let file = fs::File::create(&out).expect("create output file");
        let child = cmd
            .env("PGRPC_URL", url)
            .env("PGRPC_TOKEN", token)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn the {name} suite: {e}"));
        Suite { name, child, out }
    }

    /// Wait for the exit (killing it at the deadline): success and output.
    fn finish(mut self, deadline: Instant) -> (bool, String) {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let output = fs::read_to_string(&self.out).unwrap_or_default();
        match status {
            Some(s) => (s.success(), output),
            None => (
                false,
                format!(
                    "{output}\n[{} suite killed after {SUITE_LIMIT:?}]",
                    self.name
                ),
            ),
        }
    }
}

/// The number after `label` on the line that starts with it (node's `ℹ pass 23`).
fn count_after(output: &str, label: &str) -> Option<u32> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|rest| rest.trim().parse().ok())
}

/// pytest's summary: `16 passed, 4 xfailed in 0.71s` → 16.
fn pytest_passed(output: &str) -> Option<u32> {
    let line = output.lines().rev().find(|l| l.contains(" passed"))?;
    let words: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == ',')
        .collect();
    let i = words.iter().position(|w| *w == "passed")?;
    words.get(i.checked_sub(1)?)?.parse().ok()
}

#[test]
fn postgrest_js_and_postgrest_py_call_functions_on_the_real_binary() {
    let tools = match find_tools() {
        Ok(t) => t,
        Err(why) => {
            if std::env::var("TESTS_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("TESTS_REQUIRE_TOOLS=1 but the client libraries are missing ({why}): run tests/clients/setup.sh");
            }
            say(&format!(
                "clients: skipped: run tests/clients/setup.sh ({why})"
            ));
            return;
        }
    };

    let dir = crate::harness::pg_tempdir("pgrpc-clients-");
    let data = dir.path().join("data");

    let mut gw = Gateway::shipped(&data, &[]);
    gw.wait_for(Duration::from_secs(10), "log its psql command", |gw| {
        gw.log().contains("psql -h ")
    });
    let (socket, pg_port) = psql_target(&gw.log());
    crate::harness::superuser(&socket, pg_port, async |c| {
        c.batch_execute(FIXTURES)
            .await
            .expect("create the fixture functions")
    });
    // The event trigger reloads the schema cache; whoami was created last.
    gw.wait_for(Duration::from_secs(20), "serve the new functions", |gw| {
        gw.status("/rpc/whoami") == 200
    });
    let token = gw.token("app_user");

    let mut node = Command::new("node");
    // Default discovery (*.test.mjs, node_modules excluded) in the js directory.
    node.args(["--test", "--test-reporter=spec"])
        .current_dir(&tools.js_dir);
    let mut pytest = Command::new(&tools.python);
    pytest
        .args(["-m", "pytest", "-p", "no:cacheprovider", "-rxX"])
        .arg(&tools.py_dir)
        .current_dir(ROOT)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    // Both at once: they only read.
    let js = Suite::spawn(
        "postgrest-js",
        node,
        dir.path().join("js.out"),
        &gw.url(""),
        &token,
    );
    let py = Suite::spawn(
        "postgrest-py",
        pytest,
        dir.path().join("py.out"),
        &gw.url(""),
        &token,
    );
    let deadline = Instant::now() + SUITE_LIMIT;
    let (js_ok, js_out) = js.finish(deadline);
    let (py_ok, py_out) = py.finish(deadline);

    let report = format!(
        "==== postgrest-js (node --test) ====\n{js_out}\n==== postgrest-py (pytest) ====\n{py_out}\n==== pgrpc log ====\n{}",
        gw.log()
    );
    assert!(
        js_ok && py_ok,
        "a client suite failed (js: {js_ok}, py: {py_ok})\n{report}"
    );
    // A suite that found no tests also exits 0.
    let js_passed = count_after(&js_out, "ℹ pass").unwrap_or(0);
    let py_passed = pytest_passed(&py_out).unwrap_or(0);
    assert!(
        js_passed > 0 && py_passed > 0,
        "a client suite ran no test\n{report}"
    );
    say(&format!(
        "clients: postgrest-js {js_passed} passed (todo {}), postgrest-py {py_passed} passed",
        count_after(&js_out, "ℹ todo").unwrap_or(0)
    ));
}
