//! Which events each unit of a generation run is. The world holds what units are drawn from
//! (the fleet, the clock, the benign script families, the attack campaigns and the rule
//! versions to synthesise positives for) and is shared read-only by the worker threads; unit
//! `u` draws from its own seeded random source, so any thread can make any unit. The event
//! shapes themselves are in `events`.

use std::collections::BTreeSet;

use crate::cond::analyzer::Analyzer;
use crate::cond::eval;
use crate::cond::fields::FieldTypes;
use crate::cond::Cond;
use crate::ingest::doc::Doc;
use crate::ingest::pipeline;
use crate::rules::pack::{Pack, Status};

use super::events::{ndjson_line, to_document};
use super::fleet::{Clock, Fleet, Rng, Role};
use super::{attacks, scripts, windows, GenOptions, Incident};

/// Malicious units are numbered from here (their random streams never meet a benign one's).
pub(super) const MALICIOUS_UNITS: u64 = 1 << 48;

/// One generated event: raw (Winlogbeat shape) and mapped.
pub(super) struct Generated {
    pub(super) line: Option<String>,
    pub(super) doc: Doc,
    pub(super) malicious: bool,
    /// The (campaign, step) a malicious event plays.
    pub(super) step: Option<(usize, usize)>,
    pub(super) target: Option<String>,
    pub(super) unsatisfied: bool,
}

/// Everything units are drawn from; shared read-only by the worker threads.
pub(super) struct World<'a> {
    pub(super) opts: &'a GenOptions,
    pub(super) fleet: Fleet,
    pub(super) clock: Clock,
    families: Vec<scripts::Family>,
    total_weight: u32,
    campaigns: Vec<Campaign>,
    /// How many malicious units (campaign steps) the run places.
    pub(super) malicious_units: u64,
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
/// PowerShell steps are script blocks (`attacks`), the others Windows techniques
/// ([`windows::TECHNIQUES`]).
const SCENARIOS: &[&[&str]] = &[
    &[
        "office-macro",
        "split-discovery",
        "encoded-payload",
        "psreflect-discovery",
        "discovery-burst",
        "lsass-minidump",
    ],
    &[
        "password-spray",
        "psexec-service",
        "encoded-payload",
        "amsi-bypass",
        "psreflect-discovery",
        "pinvoke-discovery",
        "mimikatz",
        "schtask-persistence",
        "sam-hive-copy",
        "security-log-cleared",
    ],
    &[
        "office-macro",
        "amsi-bypass",
        "keylogger",
        "clipboard-capture",
        "screen-capture",
    ],
    &[
        "pinvoke-discovery",
        "psreflect-discovery",
        "mailbox-export",
        "schtask-persistence",
    ],
    &[
        "encoded-payload",
        "mimikatz",
        "psreflect-discovery",
        "lsass-minidump",
        "security-log-cleared",
    ],
];

/// The rule versions of the pack that compiled, to synthesise positives for.
fn targets_of(pack: &Pack) -> Vec<Target> {
    pack.versions
        .iter()
        .filter_map(|v| match &v.status {
            Status::Ready(compiled) => Some(Target {
                key: v.rule.key(),
                cond: compiled.cond.clone(),
            }),
            _ => None,
        })
        .collect()
}

impl<'a> World<'a> {
    pub(super) fn new(opts: &'a GenOptions, pack: &Pack) -> World<'a> {
        let families = scripts::benign_families();
        let total_weight = families.iter().map(|f| f.weight).sum();
        let analyzer = Analyzer::parse(opts.convert.mapping.script_block_analyzer())
            .unwrap_or(Analyzer::Pattern);
        let mut world = World {
            opts,
            fleet: Fleet::new(opts.hosts, opts.users, opts.seed),
            clock: Clock {
                start_us: opts.start_us,
                days: opts.days.max(1),
            },
            families,
            total_weight,
            campaigns: Vec::new(),
            malicious_units: 0,
            targets: targets_of(pack),
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
        let campaigns: Vec<Campaign> = (0..n_campaigns)
            .map(|c| world.campaign(c, n_campaigns, &rule_ids))
            .collect();
        world.malicious_units = campaigns.iter().map(|c| c.steps.len() as u64).sum();
        world.campaigns = campaigns;
        world
    }

    /// Campaign `c` of `n`: its scenario's steps, then its share of synthesised positives.
    /// Every rule of the pack gets them: step j of rule r goes to campaign (r + j) mod n, each
    /// at a version drawn for it. Small packs get more steps per rule, so their versions are
    /// well covered.
    fn campaign(&self, c: u64, n: u64, rule_ids: &[&str]) -> Campaign {
        let mut rng = Rng::for_item(self.opts.seed, 7, c);
        let scenario = SCENARIOS[(c % SCENARIOS.len() as u64) as usize];
        let mut steps: Vec<Step> = scenario.iter().map(|f| Step::Family(f)).collect();
        let steps_per_rule = (24 / rule_ids.len().max(1)).max(2) as u64;
        for (r, id) in rule_ids.iter().enumerate() {
            let prefix = format!("{id}@");
            let versions: Vec<usize> = self
                .targets
                .iter()
                .enumerate()
                .filter(|(_, t)| t.key.starts_with(&prefix))
                .map(|(i, _)| i)
                .collect();
            for j in 0..steps_per_rule {
                if (r as u64 + j) % n == c && !versions.is_empty() {
                    steps.push(Step::Synth(*rng.pick(&versions)));
                }
            }
        }
        let role = if scenario.contains(&"mailbox-export") {
            Role::Exchange
        } else {
            Role::Workstation
        };
        let host_name = &self.fleet.host_with(&mut rng, role).name;
        let host = self
            .fleet
            .hosts
            .iter()
            .position(|h| &h.name == host_name)
            .unwrap_or(0);
        let admin = rng.chance(0.3);
        let user_sid = &self.fleet.user(&mut rng, false, admin).sid;
        let user = self
            .fleet
            .users
            .iter()
            .position(|u| &u.sid == user_sid)
            .unwrap_or(0);
        Campaign {
            id: format!("campaign-{:04}", c + 1),
            host,
            user,
            start_us: self.clock.working_time(&mut rng),
            steps,
        }
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
    pub(super) fn malicious_unit(&self, slot: u64) -> Vec<Generated> {
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
    pub(super) fn unit(&self, u: u64) -> Vec<Generated> {
        let mut rng = Rng::for_item(self.opts.seed, 2, u);
        match rng.below(100) {
            0..=64 => self.benign_script(u, &mut rng),
            65..=68 => vec![self.module_logging(u, &mut rng)],
            69..=71 => self.start_stop(u, &mut rng),
            72..=75 => vec![self.classic(u, &mut rng)],
            _ => self.windows_activity(u, &mut rng),
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
            Step::Family(name) if windows::TECHNIQUES.contains(name) => {
                let docs =
                    self.windows_technique(name, u, &mut rng, (campaign.host, campaign.user, ts));
                docs.into_iter()
                    .map(|doc| {
                        let mut g = self.finish(doc, name, true, None);
                        self.label_malicious(&mut g, &campaign.id, None);
                        g
                    })
                    .collect()
            }
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
            self.label_malicious(g, campaign, target);
        }
        events
    }

    /// Marks an event as a campaign's (and, for a synthesised positive, the rule version's).
    fn label_malicious(&self, g: &mut Generated, campaign: &str, target: Option<&str>) {
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

    /// The campaigns' windows: first to last malicious event the run emitted (a campaign cut off
    /// by the end of the run keeps only what happened).
    pub(super) fn incidents(&self, emitted: &BTreeSet<(usize, usize)>) -> Vec<Incident> {
        self.campaigns
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
                    host: self.fleet.hosts[campaign.host].name.clone(),
                    user: self.fleet.users[campaign.user].sid.clone(),
                    start_us: self.step_time(c, first),
                    end_us: self.step_time(c, last) + 60_000_000,
                    families: steps
                        .iter()
                        .map(|s| match &campaign.steps[*s] {
                            Step::Family(f) => (*f).to_string(),
                            Step::Synth(t) => format!("synthesised:{}", self.targets[*t].key),
                        })
                        .collect(),
                })
            })
            .collect()
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
