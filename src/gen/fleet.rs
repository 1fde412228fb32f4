//! The simulated fleet: a deterministic random source, hosts, users and the clock.
//!
//! Every event is drawn from its own [`Rng`] seeded by (run seed, unit index), so any chunk
//! of the run can be generated on any thread and the output is the same bytes whatever the
//! thread count. Hosts are workstations, servers, domain controllers and Exchange servers;
//! users are SYSTEM, LOCAL and NETWORK SERVICE, administrators and ordinary users, with the
//! SIDs Windows gives them. Times follow a working-day rhythm (quiet nights and weekends)
//! with scheduled scripts at fixed minutes and occasional bursts.

/// SplitMix64: tiny, fast and fixed forever (the bytes a seed produces must never change).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The generator of item `index` under `seed` (independent streams).
    pub fn for_item(seed: u64, stream: u64, index: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.0 ^= r.next_u64() ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
        r.next_u64();
        r
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A Zipf-like draw in `0..n`: low indices are much more frequent (popular scripts).
    pub fn skewed(&mut self, n: u64) -> u64 {
        let u = self.unit();
        ((n as f64).powf(u) - 1.0)
            .floor()
            .clamp(0.0, (n - 1) as f64) as u64
    }

    /// A GUID-shaped identifier.
    pub fn guid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }
}

/// What a host is for; it decides which scripts run there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Workstation,
    Server,
    DomainController,
    Exchange,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub domain: String,
    pub role: Role,
    /// Its address on the corporate network.
    pub ip: String,
}

impl Host {
    pub fn fqdn(&self) -> String {
        format!("{}.{}", self.name, self.domain)
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub sid: String,
    pub domain: String,
    pub name: String,
    /// SYSTEM and the service accounts run agents and scheduled tasks.
    pub service: bool,
    pub admin: bool,
}

/// Hosts and users of the simulated organisation.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub hosts: Vec<Host>,
    pub users: Vec<User>,
}

const DOMAIN_SID: &str = "S-1-5-21-3623811015-3361044348-30300820";
const FIRST_NAMES: &[&str] = &[
    "anna", "ben", "carla", "dmitri", "elif", "farid", "grace", "hiro", "ines", "jonas", "kofi",
    "lena", "mateo", "nora", "oskar", "priya", "quentin", "rosa", "sven", "tariq", "ulla",
    "viktor", "wen", "ximena", "yusuf", "zoe",
];

impl Fleet {
    pub fn new(hosts: usize, users: usize, seed: u64) -> Fleet {
        let mut rng = Rng::for_item(seed, 1, 0);
        let domain = "corp.example".to_string();
        let hosts = (0..hosts.max(1))
            .map(|i| {
                let (role, name) = match i % 20 {
                    0 => (Role::DomainController, format!("dc-{:02}", i / 20 + 1)),
                    1 => (Role::Exchange, format!("exch-{:02}", i / 20 + 1)),
                    2..=4 => (Role::Server, format!("srv-{:04}", i + 1)),
                    _ => (Role::Workstation, format!("ws-{:04}", i + 1)),
                };
                Host {
                    name,
                    domain: domain.clone(),
                    role,
                    ip: format!("10.20.{}.{}", i / 200, 10 + i % 200),
                }
            })
            .collect();
        let mut people = Vec::new();
        people.push(User {
            sid: "S-1-5-18".into(),
            domain: "NT AUTHORITY".into(),
            name: "SYSTEM".into(),
            service: true,
            admin: true,
        });
        people.push(User {
            sid: "S-1-5-19".into(),
            domain: "NT AUTHORITY".into(),
            name: "LOCAL SERVICE".into(),
            service: true,
            admin: false,
        });
        people.push(User {
            sid: "S-1-5-20".into(),
            domain: "NT AUTHORITY".into(),
            name: "NETWORK SERVICE".into(),
            service: true,
            admin: false,
        });
        people.push(User {
            sid: format!("{DOMAIN_SID}-500"),
            domain: "CORP".into(),
            name: "Administrator".into(),
            service: false,
            admin: true,
        });
        for i in 0..users.max(1) {
            let first = rng.pick(FIRST_NAMES);
            let admin = i % 12 == 0;
            people.push(User {
                sid: format!("{DOMAIN_SID}-{}", 1104 + i),
                domain: "CORP".into(),
                name: if admin {
                    format!("adm-{first}{i}")
                } else {
                    format!("{first}.{i}")
                },
                service: false,
                admin,
            });
        }
        Fleet {
            hosts,
            users: people,
        }
    }

    pub fn host(&self, rng: &mut Rng) -> &Host {
        rng.pick(&self.hosts)
    }

    /// A host of a given role (any host when the fleet has none).
    pub fn host_with(&self, rng: &mut Rng, role: Role) -> &Host {
        let n = self.hosts.iter().filter(|h| h.role == role).count();
        if n == 0 {
            return self.host(rng);
        }
        let k = rng.below(n as u64) as usize;
        self.hosts
            .iter()
            .filter(|h| h.role == role)
            .nth(k)
            .unwrap_or(&self.hosts[0])
    }

    /// The account a script of this kind runs as.
    pub fn user(&self, rng: &mut Rng, service: bool, admin: bool) -> &User {
        if service {
            // SYSTEM runs most agents; the service accounts some.
            return &self.users[match rng.below(10) {
                0 => 1,
                1 => 2,
                _ => 0,
            }];
        }
        let humans: Vec<&User> = self
            .users
            .iter()
            .filter(|u| !u.service && (!admin || u.admin))
            .collect();
        humans[rng.below(humans.len() as u64) as usize]
    }
}

/// When events happen: `days` days from `start_us` (UTC microseconds).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub start_us: i64,
    pub days: u32,
}

const DAY_US: i64 = 86_400_000_000;
const HOUR_US: i64 = 3_600_000_000;
const MINUTE_US: i64 = 60_000_000;

impl Clock {
    /// A day, weekends less likely (the start date's weekday counts as given).
    fn day(&self, rng: &mut Rng) -> i64 {
        loop {
            let d = rng.below(u64::from(self.days.max(1))) as i64;
            let t = self.start_us + d * DAY_US;
            let weekday = (t.div_euclid(DAY_US) + 4).rem_euclid(7); // 0 = Sunday
            if !(weekday == 0 || weekday == 6) || rng.chance(0.3) {
                return t;
            }
        }
    }

    /// A time for interactive work: mostly 07:00–19:00 UTC.
    pub fn working_time(&self, rng: &mut Rng) -> i64 {
        let day = self.day(rng);
        let hour = if rng.chance(0.85) {
            7 + rng.below(12)
        } else {
            rng.below(24)
        };
        day + hour as i64 * HOUR_US + rng.below(HOUR_US as u64) as i64
    }

    /// A scheduled run: any hour, at the script's fixed minute, a few seconds of jitter.
    pub fn scheduled_time(&self, rng: &mut Rng, minute: u64) -> i64 {
        let day = self.start_us + rng.below(u64::from(self.days.max(1))) as i64 * DAY_US;
        let hour = rng.below(24) as i64;
        day + hour * HOUR_US + (minute % 60) as i64 * MINUTE_US + rng.below(20_000_000) as i64
    }

    /// A burst: one of a few instants per day when an admin pushes a script to many hosts.
    pub fn burst_time(&self, rng: &mut Rng) -> i64 {
        let day = self.day(rng);
        let instant = rng.below(3) as i64;
        day + (9 + 3 * instant) * HOUR_US + rng.below(120_000_000) as i64
    }
}
