//! `quarry gen`: realistic Windows PowerShell telemetry at any scale, with ground truth.
//!
//! [`generate`] writes a dataset exactly as `convert` would (the same ingest pipeline, writer
//! and manifest: events are produced in Winlogbeat's raw shape and mapped by
//! [`crate::ingest::pipeline`]), optionally also as Winlogbeat NDJSON, so converting that file
//! gives back the same rows. The run is cut into units (one script execution, or one other
//! event); unit `u` is drawn from its own seeded random source, so any thread can make any
//! unit and a seed always gives the same bytes. Benign executions come from [`scripts`]
//! (re-runs of a pool of popular script instances, with a knob for how much text is distinct);
//! attack campaigns from [`attacks`] are injected at known times on known hosts, and their
//! incident windows are written beside the dataset (`_quarry/truth/`).

pub mod attacks;
pub mod fleet;
pub mod scripts;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cond::analyzer::Analyzer;
use crate::cond::eval::{self, Document};
use crate::cond::fields::FieldTypes;
use crate::cond::Cond;
use crate::ingest::doc::{Doc, Value};
use crate::ingest::shapes::Shape;
use crate::ingest::{
    self, parallel, pipeline, ConvertOptions, ConvertProgress, ConvertReport, EventSink,
    GeneratedSource, IngestError,
};
use crate::rules::pack::{Pack, Status};
use fleet::{Clock, Fleet, Rng, Role};

/// PowerShell logs a script block longer than this many characters as several 4104 events.
pub const FRAGMENT_CHARS: usize = 20_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Stop after this many events (at the end of a script's fragments).
    pub events: Option<u64>,
    /// Stop after this many bytes of Winlogbeat NDJSON text.
    pub size: Option<u64>,
    pub days: u32,
    /// First day, UTC microseconds since the epoch (midnight).
    pub start_us: i64,
    pub hosts: usize,
    pub users: usize,
    pub seed: u64,
    /// Write `labels.*` ground-truth columns and the incident windows.
    pub truth: bool,
    /// Share of executions whose script text is new (1.0: every script block distinct).
    pub distinct: f64,
    /// Attack campaigns to inject (default: one per 25,000 events, at least 2).
    pub campaigns: Option<u64>,
    /// Benign script bodies drawn from here instead of the built-in families.
    pub corpus: Vec<String>,
    /// Also write the raw events as Winlogbeat NDJSON to this file.
    pub ndjson: Option<PathBuf>,
    pub convert: ConvertOptions,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions {
            events: Some(10_000),
            size: None,
            days: 7,
            start_us: 1_709_251_200_000_000, // 2024-03-01
            hosts: 100,
            users: 50,
            seed: 1,
            truth: true,
            distinct: 0.02,
            campaigns: None,
            corpus: Vec::new(),
            ndjson: None,
            convert: ConvertOptions::default(),
        }
    }
}

/// Ground truth of one injected campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub campaign: String,
    pub host: String,
    pub user: String,
    pub start_us: i64,
    pub end_us: i64,
    pub families: Vec<String>,
}

/// What a generation run did.
#[derive(Debug, Clone, Default)]
pub struct GenReport {
    pub convert: ConvertReport,
    pub events: u64,
    pub ndjson_bytes: u64,
    pub malicious: u64,
    pub incidents: Vec<Incident>,
    /// Rule versions (`id@version`) with at least one synthesised true positive.
    pub covered_versions: Vec<String>,
    /// Synthesis attempts that found no matching script (fell back to a built-in family).
    pub unsatisfied: u64,
    /// The (campaign, step) pairs the run emitted.
    emitted: std::collections::BTreeSet<(usize, usize)>,
}

const UNITS_PER_CHUNK: u64 = 64;
/// Malicious units are numbered from here (their random streams never meet a benign one's).
const MALICIOUS_UNITS: u64 = 1 << 48;

/// One generated event: raw (Winlogbeat shape) and mapped.
struct Generated {
    line: Option<String>,
    doc: Doc,
    malicious: bool,
    /// The (campaign, step) a malicious event plays.
    step: Option<(usize, usize)>,
    target: Option<String>,
    unsatisfied: bool,
}

/// Everything units are drawn from; shared read-only by the worker threads.
struct World<'a> {
    opts: &'a GenOptions,
    fleet: Fleet,
    clock: Clock,
    families: Vec<scripts::Family>,
    total_weight: u32,
    campaigns: Vec<Campaign>,
    malicious_units: u64,
    targets: Vec<Target>,
    types: FieldTypes,
}

#[derive(Debug, Clone)]
struct Campaign {
    id: String,
    host: usize,
    user: usize,
    start_us: i64,
    steps: Vec<Step>,
}

#[derive(Debug, Clone)]
enum Step {
    Family(&'static str),
    /// A script synthesised for this rule version (index into `targets`).
    Synth(usize),
}

/// A rule version to synthesise true positives for.
struct Target {
    key: String,
    cond: Cond,
}

/// The scenarios campaigns follow, hand-written steps in order.
const SCENARIOS: &[&[&str]] = &[
    &["split-discovery", "encoded-payload", "psreflect-discovery"],
    &[
        "encoded-payload",
        "amsi-bypass",
        "psreflect-discovery",
        "pinvoke-discovery",
        "mimikatz",
    ],
    &[
        "amsi-bypass",
        "keylogger",
        "clipboard-capture",
        "screen-capture",
    ],
    &["pinvoke-discovery", "psreflect-discovery", "mailbox-export"],
    &["encoded-payload", "mimikatz", "psreflect-discovery"],
];

impl<'a> World<'a> {
    fn new(opts: &'a GenOptions, pack: &Pack) -> World<'a> {
        let fleet = Fleet::new(opts.hosts, opts.users, opts.seed);
        let clock = Clock {
            start_us: opts.start_us,
            days: opts.days.max(1),
        };
        let families = scripts::benign_families();
        let total_weight = families.iter().map(|f| f.weight).sum();
        let analyzer = Analyzer::parse(opts.convert.mapping.script_block_analyzer())
            .unwrap_or(Analyzer::Pattern);
        let targets: Vec<Target> = pack
            .versions
            .iter()
            .filter_map(|v| match &v.status {
                Status::Ready(compiled) => Some(Target {
                    key: v.rule.key(),
                    cond: compiled.cond.clone(),
                }),
                _ => None,
            })
            .collect();
        let mut world = World {
            opts,
            fleet,
            clock,
            families,
            total_weight,
            campaigns: Vec::new(),
            malicious_units: 0,
            targets: Vec::new(),
            types: FieldTypes::new(analyzer),
        };
        // How many events the run will have; for `--size`, measured on the first units of
        // this very run (the families' sizes are heavy-tailed).
        let expected_events = match (opts.events, opts.size) {
            (Some(n), _) => n,
            (None, Some(bytes)) => (bytes as f64 / world.bytes_per_event()) as u64,
            (None, None) => 1,
        };
        let n_campaigns = opts
            .campaigns
            .unwrap_or_else(|| (expected_events / 25_000).max(2));
        let mut rule_ids: Vec<&str> = pack
            .versions
            .iter()
            .map(|v| v.rule.rule_id.as_str())
            .collect();
        rule_ids.dedup();
        // Every rule of the pack gets synthesised positives: step j of rule r goes to
        // campaign (r + j) mod n, each at a version drawn for it. Small packs get more steps
        // per rule, so their versions are well covered.
        let steps_per_rule = (24 / rule_ids.len().max(1)).max(2) as u64;
        let campaigns: Vec<Campaign> = (0..n_campaigns)
            .map(|c| {
                let mut rng = Rng::for_item(opts.seed, 7, c);
                let scenario = SCENARIOS[(c % SCENARIOS.len() as u64) as usize];
                let mut steps: Vec<Step> = scenario.iter().map(|f| Step::Family(f)).collect();
                for (r, id) in rule_ids.iter().enumerate() {
                    let prefix = format!("{id}@");
                    let versions: Vec<usize> = targets
                        .iter()
                        .enumerate()
                        .filter(|(_, t)| t.key.starts_with(&prefix))
                        .map(|(i, _)| i)
                        .collect();
                    for j in 0..steps_per_rule {
                        if (r as u64 + j) % n_campaigns == c && !versions.is_empty() {
                            steps.push(Step::Synth(*rng.pick(&versions)));
                        }
                    }
                }
                let role = if scenario.contains(&"mailbox-export") {
                    Role::Exchange
                } else {
                    Role::Workstation
                };
                let host_name = world.fleet.host_with(&mut rng, role).name.clone();
                let host = world
                    .fleet
                    .hosts
                    .iter()
                    .position(|h| h.name == host_name)
                    .unwrap_or(0);
                let admin = rng.chance(0.3);
                let user_sid = world.fleet.user(&mut rng, false, admin).sid.clone();
                let user = world
                    .fleet
                    .users
                    .iter()
                    .position(|u| u.sid == user_sid)
                    .unwrap_or(0);
                Campaign {
                    id: format!("campaign-{:04}", c + 1),
                    host,
                    user,
                    start_us: world.clock.working_time(&mut rng),
                    steps,
                }
            })
            .collect();
        let malicious_units: u64 = campaigns.iter().map(|c| c.steps.len() as u64).sum();
        world.malicious_units = malicious_units;
        world.campaigns = campaigns;
        world.targets = targets;
        world
    }

    /// Mean NDJSON bytes per event over the first units (all benign).
    fn bytes_per_event(&self) -> f64 {
        const SAMPLE: u64 = 2_000;
        let (mut events, mut bytes) = (0u64, 0u64);
        for u in 0..SAMPLE {
            for g in self.unit(u) {
                events += 1;
                bytes += ndjson_line(&g.doc).len() as u64 + 1;
            }
        }
        bytes as f64 / events.max(1) as f64
    }

    /// The (campaign, step) of malicious slot `slot` (campaigns' steps in order).
    fn slot_step(&self, mut slot: u64) -> Option<(usize, usize)> {
        for (c, campaign) in self.campaigns.iter().enumerate() {
            let n = campaign.steps.len() as u64;
            if slot < n {
                return Some((c, slot as usize));
            }
            slot -= n;
        }
        None
    }

    /// The events of malicious slot `slot`, mapped (made on the consumer's thread).
    fn malicious_unit(&self, slot: u64) -> Vec<Generated> {
        let Some((c, step)) = self.slot_step(slot) else {
            return Vec::new();
        };
        let mut events = self.malicious(MALICIOUS_UNITS + slot, c, step);
        for g in &mut events {
            g.line = Some(ndjson_line(&g.doc));
            pipeline::apply(&mut g.doc, self.opts.convert.pipeline);
        }
        events
    }

    fn step_time(&self, c: usize, step: usize) -> i64 {
        let mut rng = Rng::for_item(self.opts.seed, 8, c as u64);
        let mut t = self.campaigns[c].start_us;
        for _ in 0..=step {
            t += 30_000_000 + rng.below(600_000_000) as i64;
        }
        // Event times are written with millisecond precision.
        t - t.rem_euclid(1000)
    }

    /// All events of benign unit `u`.
    fn unit(&self, u: u64) -> Vec<Generated> {
        let mut rng = Rng::for_item(self.opts.seed, 2, u);
        match rng.below(100) {
            0..=79 => self.benign_script(u, &mut rng),
            80..=84 => vec![self.module_logging(u, &mut rng)],
            85..=88 => self.start_stop(u, &mut rng),
            89..=94 => vec![self.classic(u, &mut rng)],
            _ => vec![self.process_creation(u, &mut rng)],
        }
    }

    fn benign_script(&self, u: u64, rng: &mut Rng) -> Vec<Generated> {
        let distinct = rng.chance(self.opts.distinct);
        if !self.opts.corpus.is_empty() {
            let i = if distinct {
                rng.below(self.opts.corpus.len() as u64)
            } else {
                rng.skewed(self.opts.corpus.len() as u64)
            };
            let script = scripts_from_corpus(&self.opts.corpus[i as usize], rng);
            return self.script_events(u, rng, &script, "corpus", None);
        }
        let mut pick = rng.below(u64::from(self.total_weight)) as u32;
        let (index, family) = self
            .families
            .iter()
            .enumerate()
            .find(|(_, f)| {
                if pick < f.weight {
                    true
                } else {
                    pick -= f.weight;
                    false
                }
            })
            .unwrap_or((0, &self.families[0]));
        let instance = if distinct {
            1_000_000 + u
        } else {
            rng.skewed(200)
        };
        let mut text_rng = Rng::for_item(self.opts.seed, 100 + index as u64, instance);
        let script = (family.make)(&mut text_rng);
        self.script_events(u, rng, &script, family.name, None)
    }

    /// The 4104 events of one execution of `script` (several when it is long).
    fn script_events(
        &self,
        u: u64,
        rng: &mut Rng,
        script: &scripts::Script,
        family: &str,
        at: Option<(usize, usize, i64)>,
    ) -> Vec<Generated> {
        let (host, user, ts) = match at {
            Some((h, usr, t)) => (&self.fleet.hosts[h], &self.fleet.users[usr], t),
            None => {
                let host = match script.role {
                    Some(role) => self.fleet.host_with(rng, role),
                    None => self.fleet.host(rng),
                };
                let user = self.fleet.user(rng, script.service, script.admin);
                let ts = match script.minute {
                    Some(m) => self.clock.scheduled_time(rng, m),
                    None if rng.chance(0.03) => self.clock.burst_time(rng),
                    None => self.clock.working_time(rng),
                };
                (host, user, ts)
            }
        };
        let block_id = rng.guid();
        let pid = 1000 + rng.below(30_000) as i64;
        let fragments = fragments(&script.text);
        let total = fragments.len();
        fragments
            .into_iter()
            .enumerate()
            .map(|(i, text)| {
                let mut doc = base_event(
                    ts + i as i64 * 1000,
                    u * 16 + i as u64,
                    host,
                    user,
                    "4104",
                    pipeline::CHANNEL_PS_OPERATIONAL,
                    pid,
                );
                doc.set_str("winlog.level", "verbose");
                doc.set_str("log.level", "verbose");
                doc.set_str("winlog.task", "Execute a Remote Command");
                doc.set_str("winlog.opcode", "On create calls");
                ed(&mut doc, "MessageNumber", &(i + 1).to_string());
                ed(&mut doc, "MessageTotal", &total.to_string());
                ed(&mut doc, "ScriptBlockText", text);
                ed(&mut doc, "ScriptBlockId", &block_id);
                ed(&mut doc, "Path", &script.path);
                self.finish(doc, family, false, None)
            })
            .collect()
    }

    fn malicious(&self, u: u64, c: usize, step: usize) -> Vec<Generated> {
        let mut events = self.malicious_events(u, c, step);
        for g in &mut events {
            g.step = Some((c, step));
        }
        events
    }

    fn malicious_events(&self, u: u64, c: usize, step: usize) -> Vec<Generated> {
        let campaign = &self.campaigns[c];
        let ts = self.step_time(c, step);
        let mut rng = Rng::for_item(self.opts.seed, 9, u);
        let at = Some((campaign.host, campaign.user, ts));
        match &campaign.steps[step] {
            Step::Family(name) => {
                let a = attacks::attack(name, &mut rng);
                self.attack_events(u, &mut rng, a, at, &campaign.id, None)
            }
            Step::Synth(t) => {
                let target = &self.targets[*t];
                for attempt in 0..24 {
                    let mut srng = Rng::for_item(self.opts.seed, 10 + attempt, u);
                    let (text, fields) = attacks::synthesise(&target.cond, &mut srng);
                    let path = fields
                        .iter()
                        .find(|(f, _)| f == "file.path")
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default();
                    let a = attacks::Attack {
                        family: "synthesised",
                        text,
                        path,
                    };
                    let events =
                        self.attack_events(u, &mut srng, a, at, &campaign.id, Some(&target.key));
                    let matched = events.iter().any(|g| {
                        let mut mapped = g.doc.clone();
                        pipeline::apply(&mut mapped, self.opts.convert.pipeline);
                        eval::matches(&target.cond, &to_document(&mapped), &self.types)
                    });
                    if matched {
                        return events;
                    }
                }
                let a = attacks::attack("psreflect-discovery", &mut rng);
                let mut events = self.attack_events(u, &mut rng, a, at, &campaign.id, None);
                if let Some(first) = events.first_mut() {
                    first.unsatisfied = true;
                }
                events
            }
        }
    }

    fn attack_events(
        &self,
        u: u64,
        rng: &mut Rng,
        a: attacks::Attack,
        at: Option<(usize, usize, i64)>,
        campaign: &str,
        target: Option<&str>,
    ) -> Vec<Generated> {
        let script = scripts::Script {
            text: a.text,
            path: a.path,
            service: false,
            admin: false,
            minute: None,
            role: None,
        };
        let mut events = self.script_events(u, rng, &script, a.family, at);
        for g in &mut events {
            g.malicious = true;
            g.target = target.map(str::to_string);
            if self.opts.truth {
                g.doc.set_str("labels.truth", "malicious");
                g.doc.set_str("labels.campaign", campaign);
                if let Some(t) = target {
                    g.doc.set_str("labels.rule_target", t);
                }
            }
        }
        events
    }

    fn module_logging(&self, u: u64, rng: &mut Rng) -> Generated {
        let host = self.fleet.host(rng);
        let service = rng.chance(0.5);
        let user = self.fleet.user(rng, service, false);
        let ts = self.clock.working_time(rng);
        let cmd = rng.pick(&[
            "Get-Service",
            "Get-ChildItem",
            "Get-CimInstance",
            "Test-Path",
        ]);
        let arg = rng.pick(&["WinRM", "C:\\Temp", "Win32_BIOS", "HKLM:\\SOFTWARE\\Corp"]);
        let mut doc = base_event(
            ts,
            u * 16,
            host,
            user,
            "4103",
            pipeline::CHANNEL_PS_OPERATIONAL,
            1000 + rng.below(30_000) as i64,
        );
        doc.set_str("winlog.task", "Executing Pipeline");
        doc.set_str(
            "winlog.opcode",
            "To be used when operation is just executing a method",
        );
        let context = format!(
            "        Severity = Informational\r\n        Host Name = ConsoleHost\r\n        Host Version = 5.1.19041.4046\r\n        Host ID = {}\r\n        Host Application = C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\r\n        Engine Version = 5.1.19041.4046\r\n        Runspace ID = {}\r\n        Pipeline ID = {}\r\n        Command Name = {cmd}\r\n        Command Type = Cmdlet\r\n        Script Name = \r\n        Command Path = \r\n        Sequence Number = {}\r\n        User = {}\\{}\r\n        Connected User = \r\n        Shell ID = Microsoft.PowerShell\r\n",
            rng.guid(),
            rng.guid(),
            1 + rng.below(40),
            10 + rng.below(500),
            user.domain,
            user.name
        );
        ed(&mut doc, "ContextInfo", &context);
        ed(&mut doc, "UserData", "");
        ed(
            &mut doc,
            "Payload",
            &format!("CommandInvocation({cmd}): \"{cmd}\"\r\nParameterBinding({cmd}): name=\"Path\"; value=\"{arg}\""),
        );
        self.finish(doc, "module-logging", false, None)
    }

    fn start_stop(&self, u: u64, rng: &mut Rng) -> Vec<Generated> {
        let host = self.fleet.host(rng);
        let user = self.fleet.user(rng, true, false);
        let ts = self.clock.working_time(rng);
        let id = rng.guid();
        let runspace = rng.guid();
        let pid = 1000 + rng.below(30_000) as i64;
        ["4105", "4106"]
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let mut doc = base_event(
                    ts + i as i64 * 250_000,
                    u * 16 + i as u64,
                    host,
                    user,
                    code,
                    pipeline::CHANNEL_PS_OPERATIONAL,
                    pid,
                );
                doc.set_str(
                    "winlog.task",
                    if i == 0 {
                        "Starting Command"
                    } else {
                        "Stopping Command"
                    },
                );
                ed(&mut doc, "ScriptBlockId", &id);
                ed(&mut doc, "RunspaceId", &runspace);
                self.finish(doc, "start-stop", false, None)
            })
            .collect()
    }

    fn classic(&self, u: u64, rng: &mut Rng) -> Generated {
        let host = self.fleet.host(rng);
        let service = rng.chance(0.6);
        let user = self.fleet.user(rng, service, false);
        let ts = self.clock.working_time(rng);
        let code = *rng.pick(&["400", "403", "600", "800"]);
        let app = rng.pick(&[
            "powershell.exe -NoProfile -ExecutionPolicy Bypass -File C:\\ProgramData\\Scripts\\Collect-Inventory.ps1",
            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
            "powershell.exe -Command Get-Service",
        ]);
        let mut doc = base_event(
            ts,
            u * 16,
            host,
            user,
            code,
            pipeline::CHANNEL_PS_CLASSIC,
            1000 + rng.below(30_000) as i64,
        );
        doc.set_str("winlog.provider_name", "PowerShell");
        doc.remove("winlog.provider_guid");
        doc.set_str("event.provider", "PowerShell");
        let details = format!(
            "\tHostName=ConsoleHost\r\n\tHostVersion=5.1.19041.4046\r\n\tHostId={}\r\n\tHostApplication={app}\r\n\tEngineVersion=5.1.19041.4046\r\n\tRunspaceId={}\r\n\tPipelineId=\r\n\tCommandName=\r\n\tCommandType=\r\n\tScriptName=\r\n\tCommandPath=\r\n\tCommandLine=",
            rng.guid(),
            rng.guid()
        );
        match code {
            "800" => {
                ed(&mut doc, "param1", "Get-Service");
                ed(&mut doc, "param2", &details);
                ed(
                    &mut doc,
                    "param3",
                    "CommandInvocation(Get-Service): \"Get-Service\"",
                );
            }
            "600" => {
                ed(&mut doc, "param1", "Variable");
                ed(&mut doc, "param2", "Started");
                ed(&mut doc, "param3", &format!("\tProviderName=Variable\r\n\tNewProviderState=Started\r\n\r\n\tSequenceNumber={}\r\n\r\n{details}", rng.below(20)));
            }
            _ => {
                ed(
                    &mut doc,
                    "param1",
                    if code == "400" {
                        "Available"
                    } else {
                        "Stopped"
                    },
                );
                ed(
                    &mut doc,
                    "param2",
                    if code == "400" { "None" } else { "Available" },
                );
                ed(&mut doc, "param3", &format!("\tNewEngineState={}\r\n\tPreviousEngineState=None\r\n\r\n\tSequenceNumber={}\r\n\r\n{details}", if code == "400" { "Available" } else { "Stopped" }, rng.below(20)));
            }
        }
        self.finish(doc, "engine-lifecycle", false, None)
    }

    fn process_creation(&self, u: u64, rng: &mut Rng) -> Generated {
        let host = self.fleet.host(rng);
        let service = rng.chance(0.4);
        let user = self.fleet.user(rng, service, false);
        let ts = self.clock.working_time(rng);
        let (image, cmd) = *rng.pick(&[
            (
                "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                "powershell.exe -NoProfile -File C:\\ProgramData\\Scripts\\Collect-Inventory.ps1",
            ),
            ("C:\\Windows\\System32\\cmd.exe", "cmd.exe /c ipconfig /all"),
            (
                "C:\\Windows\\System32\\svchost.exe",
                "C:\\Windows\\system32\\svchost.exe -k netsvcs -p",
            ),
            (
                "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
                "\"WINWORD.EXE\" /n",
            ),
        ]);
        let sysmon = rng.chance(0.5);
        let pid = 1000 + rng.below(30_000) as i64;
        let (code, channel) = if sysmon {
            ("1", "Microsoft-Windows-Sysmon/Operational")
        } else {
            ("4688", "Security")
        };
        let mut doc = base_event(ts, u * 16, host, user, code, channel, 4);
        doc.remove("winlog.provider_guid");
        if sysmon {
            doc.set_str("winlog.provider_name", "Microsoft-Windows-Sysmon");
            doc.set_str("event.provider", "Microsoft-Windows-Sysmon");
            doc.set_str("winlog.task", "Process Create (rule: ProcessCreate)");
            ed(&mut doc, "UtcTime", &ingest::format_micros(ts));
            ed(&mut doc, "ProcessGuid", &format!("{{{}}}", rng.guid()));
            ed(&mut doc, "ProcessId", &pid.to_string());
            ed(&mut doc, "Image", image);
            ed(&mut doc, "CommandLine", cmd);
            ed(&mut doc, "CurrentDirectory", "C:\\Windows\\system32\\");
            ed(&mut doc, "User", &format!("{}\\{}", user.domain, user.name));
            ed(
                &mut doc,
                "IntegrityLevel",
                if user.service { "System" } else { "Medium" },
            );
            ed(&mut doc, "ParentImage", "C:\\Windows\\explorer.exe");
        } else {
            doc.set_str(
                "winlog.provider_name",
                "Microsoft-Windows-Security-Auditing",
            );
            doc.set_str("event.provider", "Microsoft-Windows-Security-Auditing");
            doc.set_str("winlog.task", "Process Creation");
            ed(&mut doc, "SubjectUserSid", &user.sid);
            ed(&mut doc, "SubjectUserName", &user.name);
            ed(&mut doc, "SubjectDomainName", &user.domain);
            ed(&mut doc, "NewProcessId", &format!("0x{pid:x}"));
            ed(&mut doc, "NewProcessName", image);
            ed(&mut doc, "CommandLine", cmd);
            ed(&mut doc, "TokenElevationType", "%%1936");
            ed(&mut doc, "ParentProcessName", "C:\\Windows\\explorer.exe");
        }
        self.finish(doc, "process-creation", false, None)
    }

    /// Adds the benign labels, renders the raw line, then maps the event.
    fn finish(
        &self,
        mut doc: Doc,
        family: &str,
        malicious: bool,
        target: Option<String>,
    ) -> Generated {
        if self.opts.truth {
            doc.set_str(
                "labels.truth",
                if malicious { "malicious" } else { "benign" },
            );
            doc.set_str("labels.family", family);
        }
        Generated {
            line: None,
            doc,
            malicious,
            step: None,
            target,
            unsatisfied: false,
        }
    }
}

fn scripts_from_corpus(text: &str, rng: &mut Rng) -> scripts::Script {
    scripts::Script {
        text: text.to_string(),
        path: String::new(),
        service: rng.chance(0.6),
        admin: false,
        minute: rng.chance(0.5).then(|| rng.below(60)),
        role: None,
    }
}

fn ed(doc: &mut Doc, name: &str, value: &str) {
    doc.set_str(format!("winlog.event_data.{name}"), value);
}

/// The fields every raw Winlogbeat 8 event carries.
fn base_event(
    ts: i64,
    record: u64,
    host: &fleet::Host,
    user: &fleet::User,
    code: &str,
    channel: &str,
    pid: i64,
) -> Doc {
    let mut doc = Doc::new();
    let time = chrono::DateTime::from_timestamp_micros(ts)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default();
    doc.set_str("@timestamp", time);
    doc.set_str("agent.type", "winlogbeat");
    doc.set_str("agent.version", "8.12.2");
    doc.set_str("host.name", host.name.clone());
    doc.set_str("event.code", code);
    doc.set_str("event.kind", "event");
    doc.set_str("event.provider", "Microsoft-Windows-PowerShell");
    doc.set_str("log.level", "information");
    doc.set_str("winlog.channel", channel);
    doc.set_str("winlog.event_id", code);
    doc.set("winlog.record_id", Value::Int(record as i64));
    doc.set_str("winlog.provider_name", "Microsoft-Windows-PowerShell");
    doc.set_str(
        "winlog.provider_guid",
        "{a0c1853b-5c40-4b15-8766-3cf1c58f985a}",
    );
    doc.set_str("winlog.computer_name", host.fqdn());
    doc.set_str("winlog.level", "information");
    doc.set("winlog.version", Value::Int(1));
    doc.set("winlog.process.pid", Value::Int(pid));
    doc.set("winlog.process.thread.id", Value::Int(pid + 4));
    doc.set_str("winlog.user.identifier", user.sid.clone());
    doc.set_str("winlog.user.domain", user.domain.clone());
    doc.set_str("winlog.user.name", user.name.clone());
    doc.set_str("winlog.user.type", "User");
    doc
}

/// The pieces PowerShell logs a script block as (at most [`FRAGMENT_CHARS`] each).
pub fn fragments(text: &str) -> Vec<&str> {
    if text.chars().count() <= FRAGMENT_CHARS {
        return vec![text];
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut count = 0;
    for (i, _) in text.char_indices() {
        if count == FRAGMENT_CHARS {
            out.push(&text[start..i]);
            start = i;
            count = 0;
        }
        count += 1;
    }
    out.push(&text[start..]);
    out
}

/// A mapped event as the reference evaluator reads it.
pub fn to_document(doc: &Doc) -> Document {
    let mut d = Document::new();
    for (field, value) in doc.iter() {
        let values: Vec<String> = match value {
            Value::List(items) => items.iter().filter_map(Value::to_text).collect(),
            other => other.to_text().into_iter().collect(),
        };
        d.fields.insert(field.to_string(), values);
    }
    d
}

/// A raw event as one line of nested Winlogbeat NDJSON.
fn ndjson_line(doc: &Doc) -> String {
    let mut root = serde_json::Map::new();
    for (path, value) in doc.iter() {
        let json = match value {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Value::from(*f),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::List(items) => serde_json::Value::Array(
                items
                    .iter()
                    .filter_map(Value::to_text)
                    .map(serde_json::Value::String)
                    .collect(),
            ),
        };
        // `@timestamp` and other keys without dots stay at the top level.
        let mut parts: Vec<&str> = path.split('.').collect();
        let last = parts.pop().unwrap_or(path);
        let mut map = &mut root;
        for p in parts {
            let entry = map
                .entry(p.to_string())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(serde_json::Map::new());
            }
            let serde_json::Value::Object(next) = entry else {
                unreachable!("made an object above")
            };
            map = next;
        }
        map.insert(last.to_string(), json);
    }
    serde_json::Value::Object(root).to_string()
}

/// Generates a dataset at `out` (adding a run to it if it exists).
pub fn generate(
    out: &Path,
    opts: &GenOptions,
    pack: &Pack,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
) -> Result<GenReport, IngestError> {
    let world = World::new(opts, pack);
    let source = GeneratedSource {
        label: describe(opts),
        fingerprint: fingerprint(opts, pack),
        format: "generated",
    };
    let mut report = GenReport::default();
    let mut ndjson = match &opts.ndjson {
        Some(p) => Some(NdjsonOut::create(p)?),
        None => None,
    };
    progress.start(opts.size.unwrap_or(0), 1);
    let convert_report =
        ingest::ingest_generated(out, &opts.convert, source, cancel, &mut |sink, cancel| {
            produce(&world, sink, ndjson.as_mut(), &mut report, progress, cancel)
        })?;
    if let Some(n) = ndjson {
        n.commit()?;
    }
    progress.finishing();
    report.convert = convert_report;
    if opts.truth && report.events > 0 {
        report.incidents = incidents(&world, &report.emitted);
        write_incidents(out, report.convert.run, &report.incidents)?;
    }
    Ok(report)
}

fn produce(
    world: &World<'_>,
    sink: &mut EventSink<'_>,
    ndjson: Option<&mut NdjsonOut>,
    report: &mut GenReport,
    progress: &mut dyn ConvertProgress,
    cancel: &AtomicBool,
) -> Result<(), IngestError> {
    let opts = world.opts;
    let prepare = opts.convert.pipeline;
    let work = |chunk: u64| -> Vec<Vec<Generated>> {
        (chunk * UNITS_PER_CHUNK..(chunk + 1) * UNITS_PER_CHUNK)
            .map(|u| {
                let mut events = world.unit(u);
                for g in &mut events {
                    g.line = Some(ndjson_line(&g.doc));
                    pipeline::apply(&mut g.doc, prepare);
                }
                events
            })
            .collect()
    };
    let mut emitter = Emitter {
        sink,
        ndjson,
        report,
        covered: std::collections::BTreeSet::new(),
        failure: None,
    };
    let mut last_progress = 0u64;
    let mut skipped_in_a_row = 0u32;
    let mut next_slot = 0u64;
    let slots = world.malicious_units;
    let mut sink_chunk = |units: Vec<Vec<Generated>>| -> bool {
        for unit in units {
            let r = &emitter.report;
            let fraction = match (opts.events, opts.size) {
                (Some(n), _) => r.events as f64 / n.max(1) as f64,
                (None, Some(bytes)) => r.ndjson_bytes as f64 / bytes.max(1) as f64,
                (None, None) => 1.0,
            };
            // Stop only between units, so a fragmented script is always whole.
            if fraction >= 1.0 {
                return false;
            }
            // Campaign steps are spread evenly over the run: slot k once it is (k + ½)/n done.
            while next_slot < slots && fraction >= (next_slot as f64 + 0.5) / slots as f64 {
                let events = world.malicious_unit(next_slot);
                next_slot += 1;
                if !emitter.emit(events) {
                    return false;
                }
            }
            if let Some(target) = opts.size {
                let bytes: u64 = unit
                    .iter()
                    .map(|g| g.line.as_ref().map_or(0, |l| l.len() as u64 + 1))
                    .sum();
                // A unit that would overshoot the target by more than 2% is left out, so a
                // run ends near its target however large single scripts are.
                if emitter.report.ndjson_bytes + bytes > target + target / 50
                    && skipped_in_a_row < 10_000
                {
                    skipped_in_a_row += 1;
                    continue;
                }
                skipped_in_a_row = 0;
            }
            if !emitter.emit(unit) {
                return false;
            }
        }
        if emitter.report.events - last_progress >= 10_000 {
            last_progress = emitter.report.events;
            progress.advance(emitter.report.ndjson_bytes, emitter.report.events);
        }
        !cancel.load(Ordering::Relaxed)
    };
    parallel::ordered_map(
        parallel::default_threads(),
        &mut (0u64..),
        &work,
        &mut sink_chunk,
    );
    let Emitter {
        sink,
        report,
        covered,
        failure,
        ..
    } = emitter;
    sink.bytes = report.ndjson_bytes;
    report.covered_versions = covered.into_iter().collect();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes the events of the run, in order: the NDJSON copy, the dataset, the report.
struct Emitter<'a, 'w> {
    sink: &'a mut EventSink<'w>,
    ndjson: Option<&'a mut NdjsonOut>,
    report: &'a mut GenReport,
    covered: std::collections::BTreeSet<String>,
    failure: Option<IngestError>,
}

impl Emitter<'_, '_> {
    /// Emits one unit's events; false (with the error kept) when writing failed.
    fn emit(&mut self, unit: Vec<Generated>) -> bool {
        for g in unit {
            if let Some(line) = &g.line {
                self.report.ndjson_bytes += line.len() as u64 + 1;
                if let Some(n) = self.ndjson.as_deref_mut() {
                    if let Err(e) = n.write(line) {
                        self.failure = Some(e);
                        return false;
                    }
                }
            }
            self.report.events += 1;
            self.report.malicious += u64::from(g.malicious);
            self.report.unsatisfied += u64::from(g.unsatisfied);
            if let Some(step) = g.step {
                self.report.emitted.insert(step);
            }
            if let Some(t) = g.target {
                self.covered.insert(t);
            }
            if let Err(e) = self.sink.add(g.doc, Shape::Ecs) {
                self.failure = Some(e);
                return false;
            }
        }
        true
    }
}

/// The campaigns' windows: first to last malicious event the run emitted (a campaign cut off
/// by the end of the run keeps only what happened).
fn incidents(
    world: &World<'_>,
    emitted: &std::collections::BTreeSet<(usize, usize)>,
) -> Vec<Incident> {
    world
        .campaigns
        .iter()
        .enumerate()
        .filter_map(|(c, campaign)| {
            let steps: Vec<usize> = emitted
                .iter()
                .filter(|(ec, _)| *ec == c)
                .map(|(_, s)| *s)
                .collect();
            let (first, last) = (*steps.first()?, *steps.last()?);
            Some(Incident {
                campaign: campaign.id.clone(),
                host: world.fleet.hosts[campaign.host].name.clone(),
                user: world.fleet.users[campaign.user].sid.clone(),
                start_us: world.step_time(c, first),
                end_us: world.step_time(c, last) + 60_000_000,
                families: steps
                    .iter()
                    .map(|s| match &campaign.steps[*s] {
                        Step::Family(f) => (*f).to_string(),
                        Step::Synth(t) => format!("synthesised:{}", world.targets[*t].key),
                    })
                    .collect(),
            })
        })
        .collect()
}

fn write_incidents(out: &Path, run: u64, incidents: &[Incident]) -> Result<(), IngestError> {
    let dir = out.join("_quarry/truth");
    std::fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
    let path = dir.join(format!("incidents-run-{run:05}.csv"));
    let tmp = dir.join(format!(".incidents-run-{run:05}.csv.tmp"));
    let mut text = String::from("campaign,host,user_id,start,end,steps\n");
    for i in incidents {
        text.push_str(&format!(
            "{},{},{},{},{},{}\n",
            i.campaign,
            i.host,
            i.user,
            ingest::format_micros(i.start_us),
            ingest::format_micros(i.end_us),
            i.families.join(";")
        ));
    }
    std::fs::write(&tmp, text).map_err(|e| IngestError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| IngestError::io(&path, e))
}

/// The generator's parameters as a command line (recorded in the manifest).
pub fn describe(opts: &GenOptions) -> String {
    let mut s = format!(
        "quarry gen --seed {} --days {} --start {} --hosts {} --users {} --distinct {} --mapping {}",
        opts.seed,
        opts.days,
        ingest::format_micros(opts.start_us).get(..10).unwrap_or_default(),
        opts.hosts,
        opts.users,
        opts.distinct,
        opts.convert.mapping.name()
    );
    if let Some(n) = opts.events {
        s.push_str(&format!(" --events {n}"));
    }
    if let Some(b) = opts.size {
        s.push_str(&format!(" --size {b}"));
    }
    if let Some(c) = opts.campaigns {
        s.push_str(&format!(" --campaigns {c}"));
    }
    if !opts.truth {
        s.push_str(" --no-truth");
    }
    if !opts.corpus.is_empty() {
        s.push_str(&format!(" --corpus ({} scripts)", opts.corpus.len()));
    }
    s
}

fn fingerprint(opts: &GenOptions, pack: &Pack) -> String {
    let mut h = blake3::Hasher::new();
    h.update(describe(opts).as_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    for v in &pack.versions {
        h.update(v.rule.key().as_bytes());
        h.update(v.rule.query.as_bytes());
        h.update(v.rule.filters.to_string().as_bytes());
    }
    for s in &opts.corpus {
        h.update(s.as_bytes());
    }
    format!("blake3:{}", h.finalize().to_hex())
}

/// The NDJSON copy, written to a temporary name and renamed when complete.
struct NdjsonOut {
    path: PathBuf,
    tmp: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
}

impl NdjsonOut {
    fn create(path: &Path) -> Result<NdjsonOut, IngestError> {
        let tmp = path.with_extension("ndjson.partial");
        let file = std::fs::File::create(&tmp).map_err(|e| IngestError::io(&tmp, e))?;
        Ok(NdjsonOut {
            path: path.to_path_buf(),
            tmp,
            out: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    fn write(&mut self, line: &str) -> Result<(), IngestError> {
        self.out
            .write_all(line.as_bytes())
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|e| IngestError::io(&self.tmp, e))
    }

    fn commit(mut self) -> Result<(), IngestError> {
        self.out
            .flush()
            .map_err(|e| IngestError::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| IngestError::io(&self.path, e))
    }
}

/// Parses `10GB`, `500MB`, `2k` and plain byte counts (powers of 1000, or 1024 with `GiB`).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_reassemble() {
        let long: String = "ab\u{e9}".repeat(15_000);
        let parts = fragments(&long);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chars().count() <= FRAGMENT_CHARS));
        assert_eq!(parts.concat(), long);
        assert_eq!(fragments("x"), vec!["x"]);
    }

    #[test]
    fn split_discovery_cuts_its_api_name_across_fragments() {
        for seed in 0..20 {
            let a = attacks::attack("split-discovery", &mut Rng::new(seed));
            let parts = fragments(&a.text);
            assert_eq!(parts.len(), 2, "seed {seed}");
            let api = scripts::SEED_APIS
                .iter()
                .find(|api| a.text.contains(*api))
                .expect("an API name in the whole script");
            assert!(
                parts.iter().all(|p| !p.contains(api)),
                "seed {seed}: {api} is whole in a fragment"
            );
        }
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10GB"), Some(10_000_000_000));
        assert_eq!(parse_size("1.5MB"), Some(1_500_000));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("ten"), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_units() {
        let opts = GenOptions::default();
        let a = World::new(&opts, &Pack::default());
        let b = World::new(&opts, &Pack::default());
        for u in [0, 1, 7, 63, 64, 1000] {
            let x: Vec<String> = a.unit(u).iter().map(|g| ndjson_line(&g.doc)).collect();
            let y: Vec<String> = b.unit(u).iter().map(|g| ndjson_line(&g.doc)).collect();
            assert_eq!(x, y);
        }
    }
}
