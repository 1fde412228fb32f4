//! Benign PowerShell, written for quarry: the script families a Windows fleet runs, and the
//! false-positive bait that trips naive matchers.
//!
//! A [`Family`] turns a random source into a [`Script`]: its text, the file it runs from, and
//! who runs it when. Families are parameterised (names, paths, counts, sizes), so one family
//! yields many distinct scripts; the generator's instance pool makes most executions re-runs of
//! a few popular instances, as in a real fleet. Sizes are heavy-tailed: a few families emit
//! modules of hundreds of kilobytes to megabytes, which PowerShell logs as several 4104
//! fragments.

use super::fleet::{Rng, Role};

/// One script and how it runs.
#[derive(Debug, Clone)]
pub struct Script {
    pub text: String,
    /// The script file (`Path` of 4104), empty for interactive or in-memory code.
    pub path: String,
    /// Runs as SYSTEM or a service account.
    pub service: bool,
    /// Needs an administrator.
    pub admin: bool,
    /// Scheduled: runs at this minute of the hour.
    pub minute: Option<u64>,
    /// Runs only on hosts of this role.
    pub role: Option<Role>,
}

impl Script {
    fn new(text: String) -> Script {
        Script {
            text,
            path: String::new(),
            service: false,
            admin: false,
            minute: None,
            role: None,
        }
    }

    fn at(mut self, path: &str) -> Script {
        self.path = path.to_string();
        self
    }

    fn agent(mut self, rng: &mut Rng) -> Script {
        self.service = true;
        self.minute = Some(rng.below(60));
        self
    }

    fn admin(mut self) -> Script {
        self.admin = true;
        self
    }

    fn on(mut self, role: Role) -> Script {
        self.role = Some(role);
        self
    }
}

/// A named generator of scripts.
pub struct Family {
    pub name: &'static str,
    /// Relative frequency among benign executions (per mille, roughly).
    pub weight: u32,
    pub make: fn(&mut Rng) -> Script,
}

/// Every benign family, bait included.
pub fn benign_families() -> Vec<Family> {
    vec![
        Family {
            name: "inventory",
            weight: 140,
            make: inventory,
        },
        Family {
            name: "service-check",
            weight: 120,
            make: service_check,
        },
        Family {
            name: "module-manifest",
            weight: 80,
            make: module_manifest,
        },
        Family {
            name: "dsc",
            weight: 30,
            make: dsc,
        },
        Family {
            name: "sccm-client",
            weight: 80,
            make: sccm,
        },
        Family {
            name: "intune-script",
            weight: 50,
            make: intune,
        },
        Family {
            name: "ansible-module",
            weight: 2,
            make: ansible,
        },
        Family {
            name: "scom-discovery",
            weight: 3,
            make: scom,
        },
        Family {
            name: "automox-worklet",
            weight: 1,
            make: automox,
        },
        Family {
            name: "defender-atp-collection",
            weight: 2,
            make: defender_atp,
        },
        Family {
            name: "monitoring",
            weight: 100,
            make: monitoring,
        },
        Family {
            name: "azure-admin",
            weight: 30,
            make: azure_admin,
        },
        Family {
            name: "exchange-admin",
            weight: 30,
            make: exchange_admin,
        },
        Family {
            name: "profile",
            weight: 80,
            make: profile,
        },
        Family {
            name: "pester",
            weight: 20,
            make: pester,
        },
        Family {
            name: "interactive",
            weight: 100,
            make: interactive,
        },
        Family {
            name: "large-module",
            weight: 10,
            make: large_module,
        },
        Family {
            name: "bait-api-mentions",
            weight: 2,
            make: bait_api_mentions,
        },
        Family {
            name: "bait-token-boundaries",
            weight: 2,
            make: bait_token_boundaries,
        },
    ]
}

/// The Win32 API names of the seed rule's latest version, in its order.
pub const SEED_APIS: &[&str] = &[
    "NetShareEnum",
    "NetWkstaUserEnum",
    "NetSessionEnum",
    "NetLocalGroupEnum",
    "NetLocalGroupGetMembers",
    "DsGetSiteName",
    "DsEnumerateDomainTrusts",
    "WTSEnumerateSessionsEx",
    "WTSQuerySessionInformation",
    "LsaGetLogonSessionData",
    "QueryServiceObjectSecurity",
    "GetComputerNameEx",
    "NetWkstaGetInfo",
    "GetUserNameEx",
    "NetUserEnum",
    "NetUserGetInfo",
    "NetGroupEnum",
    "NetGroupGetInfo",
    "NetGroupGetUsers",
    "NetWkstaTransportEnum",
    "NetServerGetInfo",
    "LsaEnumerateTrustedDomains",
    "NetScheduleJobEnum",
    "NetUserModalsGet",
];

const SERVICES: &[&str] = &[
    "WinRM",
    "Spooler",
    "wuauserv",
    "BITS",
    "W32Time",
    "Dnscache",
    "LanmanServer",
    "EventLog",
    "MpsSvc",
    "TermService",
    "CcmExec",
    "HealthService",
    "IntuneManagementExtension",
];
const CLASSES: &[&str] = &[
    "Win32_OperatingSystem",
    "Win32_ComputerSystem",
    "Win32_LogicalDisk",
    "Win32_BIOS",
    "Win32_Processor",
    "Win32_NetworkAdapterConfiguration",
    "Win32_QuickFixEngineering",
    "Win32_Product",
];
const PROPS: &[&str] = &[
    "Name",
    "Caption",
    "Version",
    "BuildNumber",
    "FreeSpace",
    "Size",
    "Manufacturer",
    "Model",
    "SerialNumber",
    "LastBootUpTime",
    "InstallDate",
    "HotFixID",
    "IPAddress",
    "DeviceID",
];
const VERBS: &[&str] = &[
    "Get", "Set", "New", "Remove", "Test", "Invoke", "Update", "Export", "Import", "Sync",
];
const NOUNS: &[&str] = &[
    "Inventory",
    "Baseline",
    "Compliance",
    "Report",
    "Cache",
    "Setting",
    "Policy",
    "Health",
    "Certificate",
    "Share",
    "Printer",
    "Driver",
    "LogFile",
    "Backup",
];

fn ident(rng: &mut Rng) -> String {
    format!(
        "{}-{}{}",
        rng.pick(VERBS),
        rng.pick(NOUNS),
        rng.pick(&["", "Item", "State", "Data"])
    )
}

fn inventory(rng: &mut Rng) -> Script {
    let class = rng.pick(CLASSES);
    let props: Vec<&str> = (0..2 + rng.below(4)).map(|_| *rng.pick(PROPS)).collect();
    let share = rng.pick(&[
        "\\\\fs01\\inventory$",
        "\\\\fs02\\it\\inv",
        "C:\\ProgramData\\Inventory",
    ]);
    let text = format!(
        "$ErrorActionPreference = 'SilentlyContinue'\r\n$data = Get-CimInstance -ClassName {class} | Select-Object {}\r\n$out = Join-Path '{share}' (\"$env:COMPUTERNAME-{}.json\")\r\n$data | ConvertTo-Json -Depth 3 | Out-File -FilePath $out -Encoding utf8 -Force\r\n",
        props.join(", "),
        class.trim_start_matches("Win32_").to_lowercase()
    );
    Script::new(text)
        .at("C:\\ProgramData\\Scripts\\Collect-Inventory.ps1")
        .agent(rng)
}

fn service_check(rng: &mut Rng) -> Script {
    let svc = rng.pick(SERVICES);
    let text = if rng.chance(0.5) {
        format!("Get-Service -Name {svc} | Select-Object Status, StartType")
    } else {
        format!(
            "$s = Get-Service -Name '{svc}' -ErrorAction SilentlyContinue\r\nif ($s -and $s.Status -ne 'Running') {{\r\n    Start-Service -Name '{svc}'\r\n    Write-EventLog -LogName Application -Source 'ServiceWatch' -EventId {} -Message \"Restarted {svc}\"\r\n}}\r\n",
            1000 + rng.below(50)
        )
    };
    Script::new(text).agent(rng)
}

fn module_manifest(rng: &mut Rng) -> Script {
    let name = format!("Corp.{}", rng.pick(NOUNS));
    let functions: Vec<String> = (0..3 + rng.below(12))
        .map(|_| format!("'{}'", ident(rng)))
        .collect();
    let text = format!(
        "@{{\r\n    RootModule = '{name}.psm1'\r\n    ModuleVersion = '{}.{}.{}'\r\n    GUID = '{}'\r\n    Author = 'IT Operations'\r\n    CompanyName = 'Corp'\r\n    PowerShellVersion = '5.1'\r\n    FunctionsToExport = @({})\r\n    CmdletsToExport = @()\r\n    PrivateData = @{{ PSData = @{{ Tags = @('corp', 'ops') }} }}\r\n}}\r\n",
        1 + rng.below(4),
        rng.below(20),
        rng.below(100),
        rng.guid(),
        functions.join(", ")
    );
    let path = format!("C:\\Program Files\\WindowsPowerShell\\Modules\\{name}\\{name}.psd1");
    Script::new(text).at(&path)
}

fn dsc(rng: &mut Rng) -> Script {
    let feature = rng.pick(&[
        "Web-Server",
        "RSAT-AD-Tools",
        "Telnet-Client",
        "SNMP-Service",
    ]);
    let text = format!(
        "Configuration Baseline{} {{\r\n    Import-DscResource -ModuleName PSDesiredStateConfiguration\r\n    Node 'localhost' {{\r\n        WindowsFeature Feature {{ Name = '{feature}'; Ensure = '{}' }}\r\n        Registry NoAutoUpdate {{ Key = 'HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows\\WindowsUpdate\\AU'; ValueName = 'NoAutoUpdate'; ValueData = '{}'; ValueType = 'Dword' }}\r\n        Service Spooler {{ Name = 'Spooler'; State = '{}' }}\r\n    }}\r\n}}\r\n",
        rng.below(100),
        rng.pick(&["Present", "Absent"]),
        rng.below(2),
        rng.pick(&["Running", "Stopped"])
    );
    Script::new(text).agent(rng).on(Role::Server)
}

fn sccm(rng: &mut Rng) -> Script {
    let action = rng.pick(&[
        "{00000000-0000-0000-0000-000000000021}",
        "{00000000-0000-0000-0000-000000000113}",
        "{00000000-0000-0000-0000-000000000001}",
    ]);
    let text = format!(
        "$ccm = Get-WmiObject -Namespace 'root\\ccm' -Class SMS_Client\r\nInvoke-WmiMethod -Namespace 'root\\ccm' -Class SMS_Client -Name TriggerSchedule -ArgumentList '{action}' | Out-Null\r\n$apps = Get-CimInstance -Namespace 'root\\ccm\\ClientSDK' -ClassName CCM_Application | Where-Object {{ $_.InstallState -ne 'Installed' }}\r\n\"$($apps.Count) pending\" | Out-File 'C:\\Windows\\CCM\\Logs\\corp-{}.log' -Append\r\n",
        rng.below(30)
    );
    let path = format!("C:\\Windows\\CCM\\SystemTemp\\{}.ps1", rng.guid());
    Script::new(text).at(&path).agent(rng)
}

fn intune(rng: &mut Rng) -> Script {
    let key = rng.pick(&["BitLocker", "Defender", "Edge", "OneDrive"]);
    let text = format!(
        "$path = 'HKLM:\\SOFTWARE\\Corp\\Intune\\{key}'\r\nif (-not (Test-Path $path)) {{ New-Item -Path $path -Force | Out-Null }}\r\nSet-ItemProperty -Path $path -Name 'Compliant' -Value {}\r\nExit 0\r\n",
        rng.below(2)
    );
    let path = format!(
        "C:\\Program Files (x86)\\Microsoft Intune Management Extension\\Policies\\Scripts\\{}_{}.ps1",
        rng.guid(),
        rng.guid()
    );
    Script::new(text).at(&path).agent(rng)
}

/// Ansible's Windows modules: the header lines the seed rule excludes, and native calls.
fn ansible(rng: &mut Rng) -> Script {
    let body = if rng.chance(0.5) {
        "$netBuffer = [IntPtr]::Zero\r\n$res = [Ansible.Windows.Setup.NativeMethods]::NetWkstaGetInfo(null, 100, out netBuffer);\r\n"
            .to_string()
    } else {
        "$module.Result.changed = $false\r\n$module.ExitJson()\r\n".to_string()
    };
    let text = format!(
        "#!powershell\r\n\r\n# Copyright: (c) 2018, Ansible Project\r\n# GNU General Public License v3.0+\r\n\r\n#Requires -Module Ansible.ModuleUtils.AddType\r\n#AnsibleRequires -CSharpUtil Ansible.Basic\r\n\r\nAdd-CSharpType -References @'\r\nnamespace Ansible.Windows.Setup {{ public class NativeMethods {{ [DllImport(\"Netapi32.dll\")] public static extern int NetWkstaGetInfo(string server, int level, out IntPtr buffer); }} }}\r\n'@\r\n$module = [Ansible.Basic.AnsibleModule]::Create($args, @{{}})\r\n{body}"
    );
    let path = format!(
        "C:\\Users\\ansible\\AppData\\Local\\Temp\\ansible-tmp-{}\\setup.ps1",
        rng.below(1_000_000_000)
    );
    Script::new(text).at(&path).agent(rng).on(Role::Server)
}

/// SCOM's discovery script: the other exclusion of the seed rule.
fn scom(rng: &mut Rng) -> Script {
    let text = format!(
        "param($SourceType, $SourceId, $ManagedEntityId, $ComputerIdentity)\r\n$api = New-Object -comObject 'MOM.ScriptAPI'\r\n$discoveryData = $api.CreateDiscoveryData($SourceType, $SourceId, $ManagedEntityId)\r\n# DiscoverWindowsComputerProperties.ps1\r\n$site = [Microsoft.EnterpriseManagement.Common.NativeMethods]::DsGetSiteName($null)\r\n$instance = $discoveryData.CreateClassInstance(\"$MPElement[Name='Windows!Microsoft.Windows.Computer']$\")\r\n$instance.AddProperty('$MPElement[Name=\"Windows!Microsoft.Windows.Computer\"]/ActiveDirectorySite$', $site)\r\n$discoveryData.AddInstance($instance)\r\n$discoveryData\r\n# run {}\r\n",
        rng.below(100)
    );
    let path = "C:\\Program Files\\Microsoft Monitoring Agent\\Agent\\Health Service State\\Monitoring Host Temporary Files 12\\4321\\DiscoverWindowsComputerProperties.ps1";
    Script::new(text).at(path).agent(rng)
}

/// Automox worklets call the session APIs from their own directory (excluded by v320).
fn automox(rng: &mut Rng) -> Script {
    let text = format!(
        "Add-Type -TypeDefinition @'\r\nusing System; using System.Runtime.InteropServices;\r\npublic static class WinSession {{\r\n    [DllImport(\"wtsapi32.dll\")] public static extern bool WTSEnumerateSessionsEx(IntPtr h, ref int level, int filter, out IntPtr info, out int count);\r\n    [DllImport(\"wtsapi32.dll\")] public static extern bool WTSQuerySessionInformation(IntPtr h, int id, int cls, out IntPtr buf, out int bytes);\r\n}}\r\n'@\r\n$sessions = Get-AxSessions -Level {}\r\n",
        rng.below(3)
    );
    Script::new(text)
        .at("C:\\Program Files (x86)\\Automox\\WDK\\Win32\\WinSession\\WinSession.ps1")
        .agent(rng)
}

/// Defender for Endpoint's collection scripts (the seed's DSL filter excludes their path).
fn defender_atp(rng: &mut Rng) -> Script {
    let text = "$sessions = [Collector.Native]::NetSessionEnum($null, $null, $null, 10, [ref]$buf, -1, [ref]$read, [ref]$total, [ref]$resume)\r\n$shares = [Collector.Native]::NetShareEnum($null, 1, [ref]$buf2, -1, [ref]$r2, [ref]$t2, [ref]$h2)\r\n".to_string();
    let path = format!(
        "C:\\ProgramData\\Microsoft\\Windows Defender Advanced Threat Protection\\DataCollection\\{:04}.{}\\collect.ps1",
        rng.below(9999),
        rng.below(99)
    );
    Script::new(text).at(&path).agent(rng)
}

fn monitoring(rng: &mut Rng) -> Script {
    let counter = rng.pick(&[
        "\\Processor(_Total)\\% Processor Time",
        "\\Memory\\Available MBytes",
        "\\LogicalDisk(C:)\\% Free Space",
        "\\Network Interface(*)\\Bytes Total/sec",
    ]);
    let target = rng.pick(&["dc-01", "exch-01", "fs01", "proxy.corp.example"]);
    let text = format!(
        "$c = Get-Counter -Counter '{counter}' -SampleInterval {} -MaxSamples 3\r\n$avg = ($c.CounterSamples | Measure-Object -Property CookedValue -Average).Average\r\n$ok = Test-NetConnection -ComputerName {target} -Port {} -InformationLevel Quiet\r\n[pscustomobject]@{{ Host = $env:COMPUTERNAME; Value = $avg; Reachable = $ok }} | Export-Csv -Path C:\\Monitoring\\metrics.csv -Append -NoTypeInformation\r\n",
        1 + rng.below(5),
        rng.pick(&[443, 445, 389, 5985])
    );
    Script::new(text)
        .at("C:\\Monitoring\\Check-Health.ps1")
        .agent(rng)
}

fn azure_admin(rng: &mut Rng) -> Script {
    let rg = format!(
        "rg-{}-{}",
        rng.pick(&["prod", "dev", "test"]),
        rng.below(20)
    );
    let text = format!(
        "Connect-AzAccount -Identity | Out-Null\r\nSet-AzContext -Subscription '{}'\r\n$vms = Get-AzVM -ResourceGroupName '{rg}' -Status\r\n$vms | Where-Object {{ $_.PowerState -ne 'VM running' }} | ForEach-Object {{ Start-AzVM -Name $_.Name -ResourceGroupName '{rg}' -NoWait }}\r\n",
        rng.guid()
    );
    Script::new(text).admin().on(Role::Server)
}

fn exchange_admin(rng: &mut Rng) -> Script {
    let text = format!(
        "Add-PSSnapin Microsoft.Exchange.Management.PowerShell.SnapIn\r\nGet-Mailbox -ResultSize {} | Get-MailboxStatistics | Sort-Object TotalItemSize -Descending | Select-Object -First 20 DisplayName, ItemCount, TotalItemSize\r\nSet-Mailbox -Identity '{}' -ProhibitSendQuota {}GB\r\n",
        rng.pick(&["Unlimited", "500", "1000"]),
        rng.pick(&["shared-hr", "shared-it", "helpdesk"]),
        5 + rng.below(45)
    );
    Script::new(text).admin().on(Role::Exchange)
}

fn profile(rng: &mut Rng) -> Script {
    let text = if rng.chance(0.5) {
        "prompt".to_string()
    } else {
        format!(
            "Set-PSReadLineOption -EditMode {} -HistorySaveStyle SaveIncrementally\r\nSet-Alias -Name ll -Value Get-ChildItem\r\nfunction prompt {{ \"PS $($executionContext.SessionState.Path.CurrentLocation)$('>' * ($nestedPromptLevel + 1)) \" }}\r\n",
            rng.pick(&["Windows", "Emacs"])
        )
    };
    Script::new(text).at(if rng.chance(0.5) {
        "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\profile.ps1"
    } else {
        ""
    })
}

fn pester(rng: &mut Rng) -> Script {
    let noun = rng.pick(NOUNS);
    let text = format!(
        "Describe 'Corp.{noun}' {{\r\n    It 'returns a value' {{ Get-{noun} | Should -Not -BeNullOrEmpty }}\r\n    It 'handles {} items' {{ (Get-{noun} -Count {}).Count | Should -Be {} }}\r\n}}\r\n",
        rng.below(10),
        rng.below(10),
        rng.below(10)
    );
    Script::new(text).at("C:\\src\\corp-tools\\tests\\Corp.Tests.ps1")
}

fn interactive(rng: &mut Rng) -> Script {
    let text = match rng.below(6) {
        0 => format!(
            "Get-Process | Sort-Object CPU -Descending | Select-Object -First {}",
            5 + rng.below(20)
        ),
        1 => format!(
            "Get-ChildItem -Path C:\\Users\\{} -Recurse -Filter *.log | Remove-Item -WhatIf",
            rng.pick(&["Public", "Default"])
        ),
        2 => format!(
            "Get-WinEvent -LogName System -MaxEvents {} | Where-Object Level -le 2",
            10 + rng.below(90)
        ),
        3 => "$PSVersionTable".to_string(),
        4 => format!(
            "Restart-Computer -ComputerName srv-{:04} -Force",
            rng.below(100)
        ),
        _ => format!(
            "Get-ADUser -Filter 'Department -eq \"{}\"' -Properties LastLogonDate",
            rng.pick(&["Sales", "IT", "HR"])
        ),
    };
    Script::new(text)
}

/// A large generated module: hundreds of functions, from tens of kilobytes to megabytes.
fn large_module(rng: &mut Rng) -> Script {
    let functions = 50 + rng.skewed(20_000);
    let mut text = String::with_capacity(functions as usize * 260);
    text.push_str("#Requires -Version 5.1\r\nSet-StrictMode -Version Latest\r\n");
    for i in 0..functions {
        let name = ident(rng);
        text.push_str(&format!(
            "function {name}{i} {{\r\n    [CmdletBinding()] param([string]$Name = '{}', [int]$Retry = {})\r\n    for ($n = 0; $n -lt $Retry; $n++) {{ try {{ return Get-Item -Path \"HKLM:\\SOFTWARE\\Corp\\$Name\" }} catch {{ Start-Sleep -Milliseconds {} }} }}\r\n}}\r\n",
            rng.pick(NOUNS),
            1 + rng.below(5),
            100 * (1 + rng.below(9))
        ));
    }
    text.push_str("Export-ModuleMember -Function *\r\n");
    let path = format!(
        "C:\\Program Files\\WindowsPowerShell\\Modules\\Corp.Ops\\{}.psm1",
        rng.below(50)
    );
    Script::new(text).at(&path)
}

/// Benign scripts that mention API names in comments, strings and help text.
fn bait_api_mentions(rng: &mut Rng) -> Script {
    let api = rng.pick(SEED_APIS);
    let text = match rng.below(3) {
        0 => format!(
            "<#\r\n.SYNOPSIS\r\n    Lists shares without calling {api} directly.\r\n.NOTES\r\n    See the {api} documentation on learn.microsoft.com.\r\n#>\r\nGet-SmbShare | Select-Object Name, Path\r\n"
        ),
        1 => format!("Write-Host 'The {api} API is blocked by policy on this host.'\r\n"),
        _ => format!("# TODO: replace {api} with Get-CimInstance Win32_Share\r\nGet-CimInstance Win32_Share\r\n"),
    };
    Script::new(text).admin()
}

/// Near misses around the token boundaries of both analyzers.
fn bait_token_boundaries(rng: &mut Rng) -> Script {
    let api = rng.pick(SEED_APIS);
    let text = match rng.below(9) {
        0 => format!("${api}All = Get-Shares -Include {api}All\r\n"),
        1 => format!("Invoke-{api}Wrapper -Server fs01\r\n"),
        2 => format!("$r = {api}-x -Name fs01\r\n"),
        3 => format!("$m = Mod:{api}\r\n"),
        4 => format!("Get-Item caf\u{e9}{api}\r\n"),
        5 => format!("Get-Item x_{api}\r\n"),
        6 => format!("$Mod.{api}Ex2($a)\r\n"),
        7 => format!("$names = @(\t'{api}'\r)\r\n"),
        _ => format!("# {}\r\n", api.to_lowercase().replace("enum", " enum")),
    };
    Script::new(text)
}
