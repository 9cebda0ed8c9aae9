//! The engine's own cost on the hosted drill's events, for docs/performance.md's pre-create
//! measurement: the same content and the same events the hosted run sent through the real
//! image under the Filter Manager double, evaluated here by the core alone (native, Linux),
//! in the same run. The runner prints both and their ratio.
//!
//!   engine-cost CONTENT.fsc EVENTS.tsv [ROUNDS]
//!
//! EVENTS.tsv: one event per line, tab-separated, as the sensor evaluates it (paths in the
//! form the driver's volume table gives them): `create|setinfo`, path, target, process,
//! pid, desired access, create options, information class, delete (0/1), kernel mode
//! (0/1). Prints one JSON line: events, evaluations, median_ns, p99_ns, and the verdicts'
//! rule ids (for a check that both evaluated the same thing).

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("engine-cost: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(windows)]
fn main() {}

#[cfg(not(windows))]
fn run() -> Result<(), String> {
    use failsafe_loader::{EventType, RuleSet};
    use failsafeflt::event::{CreateFacts, SetInfoFacts, create_inputs, event, set_info_inputs};
    use std::time::Instant;

    let args: Vec<String> = std::env::args().collect();
    let (Some(content), Some(events)) = (args.get(1), args.get(2)) else {
        return Err("usage: engine-cost CONTENT.fsc EVENTS.tsv [ROUNDS]".into());
    };
    let rounds: usize = match args.get(3) {
        Some(r) => r.parse().map_err(|e| format!("ROUNDS `{r}`: {e}"))?,
        None => 20,
    };
    let bytes = std::fs::read(content).map_err(|e| format!("{content}: {e}"))?;
    let rules = RuleSet::load(&bytes).map_err(|e| format!("{content}: {e}"))?;
    let text = std::fs::read_to_string(events).map_err(|e| format!("{events}: {e}"))?;
    struct Ev {
        create: bool,
        path: Vec<u16>,
        target: Vec<u16>,
        process: Vec<u16>,
        nums: [u64; 6],
    }
    let mut evs = Vec::new();
    for (n, line) in (1usize..).zip(text.lines()) {
        let f: Vec<&str> = line.split('\t').collect();
        let [kind, path, target, process, rest @ ..] = f.as_slice() else {
            return Err(format!("{events}:{}: expected 10 tab-separated fields", n));
        };
        if rest.len() != 6 {
            return Err(format!(
                "{events}:{}: expected 10 tab-separated fields, found {}",
                n,
                f.len()
            ));
        }
        let mut nums = [0u64; 6];
        for (d, s) in nums.iter_mut().zip(rest) {
            *d = s
                .parse()
                .map_err(|e| format!("{events}:{}: `{s}`: {e}", n))?;
        }
        let create = match *kind {
            "create" => true,
            "setinfo" => false,
            k => {
                return Err(format!(
                    "{events}:{}: kind `{k}`: expected create or setinfo",
                    n
                ));
            }
        };
        evs.push(Ev {
            create,
            path: path.encode_utf16().collect(),
            target: target.encode_utf16().collect(),
            process: process.encode_utf16().collect(),
            nums,
        });
    }
    let decide = |e: &Ev| {
        let [pid, access, options, class, delete, kernel] = e.nums;
        if e.create {
            let facts = CreateFacts {
                path: &e.path,
                process: &e.process,
                pid,
                desired_access: u32::try_from(access).unwrap_or(0),
                options: u32::try_from(options).unwrap_or(0),
                kernel_mode: kernel != 0,
            };
            let inputs = create_inputs(&facts);
            rules.evaluate(&event(EventType::FileCreate, &inputs))
        } else {
            let facts = SetInfoFacts {
                path: &e.path,
                process: &e.process,
                pid,
                class: i32::try_from(class).unwrap_or(0),
                target: &e.target,
                delete: delete != 0,
                kernel_mode: kernel != 0,
            };
            let inputs = set_info_inputs(&facts);
            rules.evaluate(&event(EventType::FileSetInfo, &inputs))
        }
    };
    let verdicts: Vec<u32> = evs
        .iter()
        .map(|e| decide(e).map_or(0, |m| m.rule_id))
        .collect();
    let mut times = Vec::with_capacity(evs.len().saturating_mul(rounds));
    for _ in 0..rounds {
        for e in &evs {
            let t0 = Instant::now();
            let m = std::hint::black_box(decide(std::hint::black_box(e)));
            let dt = t0.elapsed();
            std::hint::black_box(m);
            times.push(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
        }
    }
    times.sort_unstable();
    let at = |q: usize| {
        times
            .get(times.len().saturating_mul(q) / 100)
            .copied()
            .unwrap_or(0)
    };
    println!(
        "{{\"events\": {}, \"evaluations\": {}, \"median_ns\": {}, \"p99_ns\": {}, \"rule_ids\": {:?}}}",
        evs.len(),
        times.len(),
        at(50),
        at(99),
        verdicts
    );
    Ok(())
}
