//! The Security data stream of Elastic's System integration (`system.security`: the router
//! `default.yml` at elastic/integrations commit 6321f22f and the mapping `standard.yml` at
//! 057f555b, ECS 8.11.0), replayed processor by processor on a document no pipeline has
//! processed. The Windows integration's `forwarded` stream runs the same mapping for
//! `Security` events collected by Windows Event Forwarding.
//!
//! The mapping reads only `winlog.event_data`, `winlog.user_data` and `event.code`:
//! categorisation and code tables ([`codes`]), users and groups ([`users`]), process, source
//! and related fields ([`process_and_source`]), security descriptors ([`sddl`]) and share
//! paths ([`files`]). Its scripts throw on a value `Long.decode` cannot read or a missing
//! mandatory field; Elasticsearch then skips the rest of the mapping and records why in
//! `error.message`, and the router still runs. Elasticsearch's own behaviour is kept too:
//! flag lists come out in the script parameter map's iteration order, `{{ }}` templates
//! JSON-escape (so `file.path` doubles its backslashes), and `source.ip` loses an
//! IPv4-mapped `::ffff:` prefix anywhere in the text. Not reproduced: the GeoIP lookups
//! (`source.geo`, `source.as`), which need MaxMind databases. Tables are in
//! [`super::security_tables`].

use super::security_tables as t;
use super::{
    ed, java_hash_map_order, last_segment, mustache, record_pipeline_error, strings,
    time_created_date, Doc, Value,
};

/// Why the mapping stopped.
struct Failure(String);

type Step = Result<(), Failure>;

const PROVIDERS: &[&str] = &[
    "Microsoft-Windows-Eventlog",
    "Microsoft-Windows-Security-Auditing",
];

/// The router (`default.yml`) with the mapping (`standard.yml`) inside it.
pub(super) fn apply(doc: &mut Doc) {
    if let Some(code) = doc.get("event.code").and_then(Value::to_text) {
        doc.set_str("event.code", code);
    }
    let provider = doc.get_text("winlog.provider_name").unwrap_or_default();
    if PROVIDERS.contains(&provider.as_str()) {
        if let Err(Failure(message)) = standard(doc) {
            doc.set_str(
                "error.message",
                format!("Processor \"script\" in pipeline \"standard\" failed with message \"{message}\""),
            );
            doc.append_unique("quarry.flags", Value::Str("pipeline_error".into()));
        }
    }
    router_tail(doc);
}

/// `default.yml` after the mapping: `::ffff:` unwrapping, `related.ip`, string ids, ECS
/// version, `log.level` and `@timestamp` from `winlog.time_created`.
fn router_tail(doc: &mut Doc) {
    if let Some(ip) = doc.get_str("source.ip").map(unwrap_ipv4_mapped) {
        doc.set_str("source.ip", ip);
    }
    if let Some(ip) = doc.get_text("source.ip").filter(|ip| ip != "-") {
        doc.append_unique("related.ip", Value::Str(mustache(&ip)));
    }
    for field in ["winlog.record_id", "winlog.event_id"] {
        if let Some(v) = doc.get(field).and_then(Value::to_text) {
            doc.set_str(field, v);
        }
    }
    doc.set_str("ecs.version", "8.11.0");
    if let Some(level) = doc.get_text("winlog.level").filter(|l| !l.is_empty()) {
        doc.set_str("log.level", level);
    }
    if let Err(message) = time_created_date(doc, "@timestamp") {
        record_pipeline_error(doc, message);
        return;
    }
    if let Some(code) = doc.get("error.code").and_then(Value::to_text) {
        doc.set_str("error.code", code);
    }
}

/// The router's `gsub` of `::ffff:(\d+\.\d+\.\d+\.\d+)` to the bare IPv4 address, wherever
/// it occurs in the text (the stored router's pattern is not anchored).
fn unwrap_ipv4_mapped(text: &str) -> String {
    const PREFIX: &str = "::ffff:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(PREFIX) {
        let after = &rest[i + PREFIX.len()..];
        let quad = dotted_quad_len(after);
        out.push_str(&rest[..i]);
        if quad > 0 {
            out.push_str(&after[..quad]);
            rest = &after[quad..];
        } else {
            out.push_str(PREFIX);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Length of a leading `[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+` (greedy digits), or 0.
fn dotted_quad_len(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 0;
    for group in 0..4 {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return 0;
        }
        if group < 3 {
            if b.get(i) != Some(&b'.') {
                return 0;
            }
            i += 1;
        }
    }
    i
}

fn standard(doc: &mut Doc) -> Step {
    let code = doc.get_text("event.code").unwrap_or_default();
    codes::categorise(doc, &code);
    codes::decode(doc, &code)?;
    users::apply(doc, &code)?;
    process_and_source::apply(doc, &code)?;
    sddl::apply(doc, &code)?;
    files::apply(doc, &code);
    Ok(())
}

/// An event-data item's text.
fn item(doc: &Doc, name: &str) -> Option<String> {
    doc.get_text(&ed(name))
}

/// An event-data item's text unless it is `""` or `"-"`.
fn item_set(doc: &Doc, name: &str) -> Option<String> {
    item(doc, name).filter(|v| !v.is_empty() && v != "-")
}

/// Java's `Long.decode`: optional sign, then `0x`/`0X`/`#` hexadecimal, a leading `0`
/// octal, or decimal; anything else (spaces included) fails.
fn long_decode(text: &str) -> Result<i64, Failure> {
    let fail = || Failure(format!("For input string: \"{text}\""));
    let (neg, body) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
        (16, h)
    } else if let Some(h) = body.strip_prefix('#') {
        (16, h)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    if digits.is_empty() || digits.starts_with(['-', '+']) {
        return Err(fail());
    }
    let magnitude = i128::from_str_radix(digits, radix).map_err(|_| fail())?;
    let value = if neg { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| fail())
}

/// Painless `splitOnToken`: every piece, empty ones included.
fn split_on_token<'a>(text: &'a str, token: &str) -> Vec<&'a str> {
    text.split(token).collect()
}

/// Java's `String.trim`: strips characters up to U+0020 at both ends.
fn java_trim(text: &str) -> &str {
    text.trim_matches(|c: char| c <= ' ')
}

/// Java's `Character.isWhitespace`.
fn java_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | '\u{1c}'..='\u{1f}'
    ) || (c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{2007}' | '\u{202f}' | '\u{85}'))
}

/// The names of the flags set in `value`, in the order the script's parameter map (keys
/// inserted sorted) iterates them; a flag of several bits needs all of them.
fn flag_names(table: &[(&str, &'static str)], value: i64) -> Result<Vec<&'static str>, Failure> {
    let mut entries = Vec::with_capacity(table.len());
    for (key, name) in table {
        entries.push((key.to_string(), (long_decode(key)?, *name)));
    }
    Ok(java_hash_map_order(entries)
        .into_iter()
        .filter(|(_, (flag, _))| value & flag == *flag)
        .map(|(_, (_, name))| name)
        .collect())
}

fn lookup(table: &[(&str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| table[i].1)
}

fn add_related_user(doc: &mut Doc, name: &str) {
    doc.append_unique("related.user", Value::Str(name.to_string()));
}

/// Section A of the mapping: categorisation and the code tables.
mod codes {
    use super::*;

    pub(super) fn categorise(doc: &mut Doc, code: &str) {
        let Some((_, category, kind, action)) = t::CATEGORIES.iter().find(|r| r.0 == code) else {
            return;
        };
        doc.set("event.category", strings(category.iter().copied()));
        doc.set("event.type", strings(kind.iter().copied()));
        doc.set_str("event.action", *action);
    }

    pub(super) fn decode(doc: &mut Doc, code: &str) -> Step {
        if let Some(kind) = item(doc, "LogonType").and_then(|v| lookup(t::LOGON_TYPES, &v)) {
            doc.set_str("winlog.logon.type", kind);
        }
        user_account_control(doc)?;
        if let Some(options) = item(doc, "TicketOptions") {
            let names = flag_names(t::TICKET_OPTIONS, long_decode(&options)?)?;
            if !names.is_empty() {
                doc.set(ed("TicketOptionsDescription"), strings(names));
            }
        }
        if let Some(kind) = item(doc, "TicketEncryptionType") {
            if let Some(name) = lookup(t::TICKET_ENCRYPTION, &kind.to_lowercase()) {
                doc.set_str(ed("TicketEncryptionTypeDescription"), name);
            }
        }
        let kerberos = ["4768", "4769", "4770", "4771"].contains(&code);
        if let Some(status) = item(doc, "Status").filter(|_| kerberos) {
            if let Some(name) = lookup(t::KERBEROS_STATUS, &status) {
                doc.set_str(ed("StatusDescription"), name);
            }
        }
        if let Some(name) = item(doc, "ServiceName") {
            doc.set_str("service.name", name);
        }
        if let Some(kind) = item(doc, "ServiceType").and_then(|v| lookup(t::SERVICE_TYPES, &v)) {
            doc.set_str("service.type", kind);
        }
        audit_subcategory(doc);
        messages(doc)?;
        logon_failure(doc, code);
        for (source, table, field) in [
            ("TdoType", t::TRUST_TYPES, "winlog.trustType"),
            ("TdoDirection", t::TRUST_DIRECTIONS, "winlog.trustDirection"),
            (
                "TdoAttributes",
                t::TRUST_ATTRIBUTES,
                "winlog.trustAttribute",
            ),
        ] {
            if let Some(name) = item(doc, source).and_then(|v| lookup(table, &v)) {
                doc.set_str(field, name);
            }
        }
        Ok(())
    }

    /// `NewUACList` from `NewUacValue`; only then `UserAccountControl` becomes the list of
    /// its `%%` codes.
    fn user_account_control(doc: &mut Doc) -> Step {
        let Some(value) = item(doc, "NewUacValue").filter(|v| v != "-") else {
            return Ok(());
        };
        let names = flag_names(t::USER_ACCOUNT_CONTROL, long_decode(&value)?)?;
        if names.is_empty() {
            return Ok(());
        }
        doc.set(ed("NewUACList"), strings(names));
        if let Some(uac) = item(doc, "UserAccountControl").filter(|v| v != "-") {
            let codes: Vec<&str> = split_on_token(&uac, "%%")
                .into_iter()
                .map(java_trim)
                .filter(|e| !e.is_empty())
                .collect();
            doc.set(ed("UserAccountControl"), strings(codes));
        }
        Ok(())
    }

    fn audit_subcategory(doc: &mut Doc) {
        let Some(guid) = item(doc, "SubcategoryGuid") else {
            return;
        };
        let key = guid.replace(['{', '}'], "").to_uppercase();
        if let Some((_, (sub, category))) = t::AUDIT_SUBCATEGORIES.iter().find(|(k, _)| *k == key) {
            doc.set(ed("Category"), strings([*category]));
            doc.set(ed("SubCategory"), strings([*sub]));
        }
    }

    /// The message-table decodings: failure reason, audit policy changes, access list and
    /// access mask.
    fn messages(doc: &mut Doc) -> Step {
        if let Some(reason) = item(doc, "FailureReason") {
            if let Some(text) = lookup(t::MESSAGES, &reason.replace("%%", "")) {
                doc.set_str("winlog.logon.failure.reason", text);
            }
        }
        for (source, separator, target) in [
            ("AuditPolicyChanges", ",", "AuditPolicyChangesDescription"),
            ("AccessList", " ", "AccessListDescription"),
        ] {
            let Some(list) = item(doc, source) else {
                continue;
            };
            let texts: Vec<&str> = split_on_token(&list, separator)
                .into_iter()
                .filter_map(|e| lookup(t::MESSAGES, java_trim(&e.replace("%%", ""))))
                .collect();
            if !texts.is_empty() {
                doc.set(ed(target), strings(texts));
            }
        }
        access_mask(doc)
    }

    /// `AccessMaskDescription`: the flag names of every whitespace-separated mask, first
    /// occurrence order.
    fn access_mask(doc: &mut Doc) -> Step {
        let Some(masks) = item(doc, "AccessMask") else {
            return Ok(());
        };
        let mut names: Vec<&str> = Vec::new();
        for piece in masks.split(java_whitespace) {
            let mask = piece.replace("%%", "");
            let mask = java_trim(&mask);
            if mask.is_empty() {
                continue;
            }
            for name in flag_names(t::ACCESS_MASK, long_decode(mask)?)? {
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        if !names.is_empty() {
            doc.set(ed("AccessMaskDescription"), strings(names));
        }
        Ok(())
    }

    fn logon_failure(doc: &mut Doc, code: &str) {
        if !["4625", "4776"].contains(&code) {
            return;
        }
        let Some(status) = item(doc, "Status") else {
            return;
        };
        if let Some(text) = lookup(t::LOGON_FAILURE_STATUS, &status) {
            doc.set_str("winlog.logon.failure.status", text);
        }
        if let Some(text) = item(doc, "SubStatus").and_then(|s| lookup(t::LOGON_FAILURE_STATUS, &s))
        {
            doc.set_str("winlog.logon.failure.sub_status", text);
        }
    }
}

/// Section B: who the event is about (`user.*`, `user.target.*`, `user.effective.*`,
/// `group.*`, `winlog.computerObject.*`) and `winlog.logon.id`.
mod users {
    use super::*;

    const TARGET_CODES: &[&str] = &[
        "4624", "4625", "4634", "4647", "4648", "4768", "4769", "4770", "4771", "4776", "4964",
    ];
    const GROUP_CODES: &[&str] = &[
        "4727", "4728", "4729", "4730", "4731", "4732", "4733", "4734", "4735", "4737", "4744",
        "4745", "4746", "4747", "4748", "4749", "4750", "4751", "4752", "4753", "4754", "4755",
        "4756", "4757", "4758", "4759", "4760", "4761", "4762", "4763", "4764", "4799",
    ];
    const SUBJECT_CODES: &[&str] = &[
        "4657", "4670", "4672", "4673", "4674", "4688", "4689", "4697", "4698", "4699", "4700",
        "4701", "4702", "4706", "4707", "4713", "4716", "4717", "4718", "4719", "4720", "4722",
        "4723", "4724", "4725", "4726", "4727", "4728", "4729", "4730", "4731", "4732", "4733",
        "4734", "4735", "4737", "4738", "4739", "4740", "4741", "4742", "4743", "4744", "4745",
        "4746", "4747", "4748", "4749", "4750", "4751", "4752", "4753", "4754", "4755", "4756",
        "4757", "4758", "4759", "4760", "4761", "4762", "4763", "4764", "4767", "4781", "4798",
        "4799", "4817", "4904", "4905", "4907", "4912", "4648", "5140", "5145",
    ];
    const TARGET_TO_TARGET_CODES: &[&str] = &[
        "4670", "4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4798",
        "4817", "4907",
    ];

    pub(super) fn apply(doc: &mut Doc, code: &str) -> Step {
        if ["4778", "4779"].contains(&code) {
            session(doc);
        }
        if TARGET_CODES.contains(&code) {
            target_user(doc);
        }
        if GROUP_CODES.contains(&code) {
            group_membership(doc);
        }
        if ["4741", "4742", "4743"].contains(&code) {
            for (source, leaf) in [
                ("TargetSid", "id"),
                ("TargetUserName", "name"),
                ("TargetDomainName", "domain"),
            ] {
                if let Some(v) = item(doc, source) {
                    doc.set_str(format!("winlog.computerObject.{leaf}"), v);
                }
            }
        }
        if ["4634", "4647", "4964"].contains(&code) {
            let id = item(doc, "TargetLogonId").ok_or_else(|| {
                Failure(
                    "field [TargetLogonId] not present as part of path \
                         [winlog.event_data.TargetLogonId]"
                        .into(),
                )
            })?;
            doc.set_str("winlog.logon.id", id);
        }
        if SUBJECT_CODES.contains(&code) {
            subject_user(doc, "winlog.event_data.");
        }
        if TARGET_TO_TARGET_CODES.contains(&code) {
            copy_target(doc, "user.target", "TargetSid")?;
        }
        if ["4648", "4688"].contains(&code) {
            copy_target(doc, "user.effective", "TargetUserSid")?;
        }
        if code == "1102" {
            subject_user(doc, "winlog.user_data.");
        }
        if let Some(id) = item(doc, "SubjectLogonId") {
            doc.set_str("winlog.logon.id", id);
        }
        if code == "1102" {
            if let Some(id) = doc.get_text("winlog.user_data.SubjectLogonId") {
                doc.set_str("winlog.logon.id", id);
            }
        }
        Ok(())
    }

    /// Remote-desktop session events (4778, 4779).
    fn session(doc: &mut Doc) {
        if let Some(name) = item(doc, "AccountName") {
            doc.set_str("user.name", name.clone());
            add_related_user(doc, &name);
        }
        if let Some(domain) = item(doc, "AccountDomain") {
            doc.set_str("user.domain", domain);
        }
        if let Some(address) = item(doc, "ClientAddress").filter(|a| a != "-") {
            doc.set_str("source.ip", address.clone());
            doc.append_unique("related.ip", Value::Str(address));
        }
        if let Some(name) = item(doc, "ClientName") {
            doc.set_str("source.domain", name);
        }
        if let Some(id) = item(doc, "LogonID") {
            doc.set_str("winlog.logon.id", id);
        }
    }

    /// `user.<leaf>`, or `user.target.<leaf>` where `user.<leaf>` is taken.
    fn fill(doc: &mut Doc, leaf: &str, value: String) {
        let field = format!("user.{leaf}");
        if doc.contains(&field) {
            doc.set_str(format!("user.target.{leaf}"), value);
        } else {
            doc.set_str(field, value);
        }
    }

    /// The target account fills `user.*`, or `user.target.*` where `user.*` is taken.
    fn target_user(doc: &mut Doc) {
        if let Some(id) = item(doc, "TargetUserSid").or_else(|| item(doc, "TargetSid")) {
            fill(doc, "id", id);
        }
        if let Some(name) = item(doc, "TargetUserName") {
            let name = split_on_token(&name, "@")[0].to_string();
            fill(doc, "name", name.clone());
            add_related_user(doc, &name);
        }
        if let Some(domain) = item(doc, "TargetDomainName") {
            fill(doc, "domain", domain);
        }
    }

    /// Group changes: the member (`MemberName`, an LDAP DN) becomes `user.target`, the group
    /// `group.*` and `user.target.group.*`.
    fn group_membership(doc: &mut Doc) {
        if let Some(member) = item(doc, "MemberName") {
            let parts = split_on_token(&member, ",");
            let name = parts[0].replace("CN=", "").replace("cn=", "");
            doc.set_str("user.target.name", name.clone());
            add_related_user(doc, &name);
            if let Some(domain) = parts.get(3) {
                doc.set_str(
                    "user.target.domain",
                    domain.replace("DC=", "").replace("dc=", ""),
                );
            }
        }
        for source in ["TargetUserSid", "TargetSid"] {
            if let Some(id) = item(doc, source) {
                doc.set_str("group.id", id);
            }
        }
        if let Some(name) = item(doc, "TargetUserName") {
            doc.set_str("group.name", name);
        }
        if let Some(domain) = item(doc, "TargetDomainName") {
            doc.set_str("group.domain", domain.replace("DC=", "").replace("dc=", ""));
        }
        if doc.has_path("user.target") {
            for leaf in ["id", "name", "domain"] {
                if let Some(v) = doc.get_text(&format!("group.{leaf}")) {
                    doc.set_str(format!("user.target.group.{leaf}"), v);
                }
            }
        }
    }

    /// `SubjectUserSid`/`SubjectUserName`/`SubjectDomainName` (under `prefix`) overwrite
    /// `user.*`.
    fn subject_user(doc: &mut Doc, prefix: &str) {
        for (source, field) in [
            ("SubjectUserSid", "user.id"),
            ("SubjectUserName", "user.name"),
            ("SubjectDomainName", "user.domain"),
        ] {
            if let Some(v) = doc.get_text(&format!("{prefix}{source}")) {
                if field == "user.name" {
                    add_related_user(doc, &v);
                }
                doc.set_str(field, v);
            }
        }
    }

    /// The target account into `object` (`user.target` or `user.effective`), `-` and empty
    /// values skipped. Painless adds the name to a `related` object it does not create:
    /// without one the script fails.
    fn copy_target(doc: &mut Doc, object: &str, sid_item: &str) -> Step {
        if let Some(id) = item_set(doc, sid_item) {
            doc.set_str(format!("{object}.id"), id);
        }
        if let Some(name) = item_set(doc, "TargetUserName") {
            let name = split_on_token(&name, "@")[0].to_string();
            doc.set_str(format!("{object}.name"), name.clone());
            if !doc.has_path("related") {
                return Err(Failure(
                    "Cannot invoke \"Object.getClass()\" because \"ctx.related\" is null".into(),
                ));
            }
            add_related_user(doc, &name);
        }
        if let Some(domain) = item_set(doc, "TargetDomainName") {
            doc.set_str(format!("{object}.domain"), domain);
        }
        Ok(())
    }
}

/// Section C: `process.*`, `source.*` and the remaining `related.user` entries.
mod process_and_source {
    use super::*;

    const COMMON_CODES: &[&str] = &[
        "1100", "1102", "1104", "1105", "1108", "4624", "4648", "4625", "4670", "4673", "4674",
        "4689", "4697", "4719", "4720", "4722", "4723", "4724", "4725", "4726", "4727", "4728",
        "4729", "4730", "4731", "4732", "4733", "4734", "4735", "4737", "4738", "4740", "4741",
        "4742", "4743", "4744", "4745", "4746", "4747", "4748", "4749", "4750", "4751", "4752",
        "4753", "4754", "4755", "4756", "4757", "4758", "4759", "4760", "4761", "4762", "4763",
        "4764", "4767", "4768", "4769", "4770", "4771", "4798", "4799", "4817", "4904", "4905",
        "4907", "4912", "5140", "5145",
    ];
    const TARGET_NAME_CODES: &[&str] = &[
        "4688", "4720", "4722", "4723", "4724", "4725", "4726", "4738", "4740", "4767", "4798",
    ];
    const PRIVILEGE_CODES: &[&str] = &["4672", "4673", "4674", "4741", "4742", "4743"];

    pub(super) fn apply(doc: &mut Doc, code: &str) -> Step {
        if COMMON_CODES.contains(&code) {
            common_fields(doc)?;
        }
        if code == "4688" {
            process_created(doc)?;
        }
        if ["4624", "4648"].contains(&code) {
            append_escaped(doc, "SubjectUserName");
        }
        if TARGET_NAME_CODES.contains(&code) {
            append_escaped(doc, "TargetUserName");
        }
        if PRIVILEGE_CODES.contains(&code) {
            if let Some(list) = item(doc, "PrivilegeList") {
                doc.set(ed("PrivilegeList"), strings(split_java_whitespace(&list)));
            }
        }
        if let Some(old) = item(doc, "OldTargetUserName").filter(|v| !v.is_empty()) {
            doc.set_str("user.target.name", old);
        }
        if let Some(new) = item(doc, "NewTargetUserName").filter(|v| !v.is_empty()) {
            doc.set_str("user.changes.name", new);
        }
        append_escaped(doc, "NewTargetUserName");
        append_escaped(doc, "OldTargetUserName");
        Ok(())
    }

    /// `related.user` += `{{winlog.event_data.<name>}}` unless absent or `-`.
    fn append_escaped(doc: &mut Doc, name: &str) {
        if let Some(v) = item(doc, name).filter(|v| v != "-") {
            doc.append_unique("related.user", Value::Str(mustache(&v)));
        }
    }

    /// Java's `String.split("\\s+")`: a leading empty piece kept, trailing ones dropped.
    fn split_java_whitespace(text: &str) -> Vec<String> {
        const WS: [char; 6] = [' ', '\t', '\n', '\u{b}', '\u{c}', '\r'];
        if text.is_empty() {
            return vec![String::new()];
        }
        let mut parts: Vec<String> = text
            .split(WS)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if text.starts_with(WS) && !parts.is_empty() {
            parts.insert(0, String::new());
        }
        parts
    }

    /// The process, source address and workstation every authentication-like event carries.
    fn common_fields(doc: &mut Doc) -> Step {
        if let Some(pid) = doc.remove(&ed("ProcessId")) {
            let pid = match &pid {
                Value::Str(s) => Value::Int(long_decode(s)?),
                other => other.clone(),
            };
            doc.set("process.pid", pid);
        }
        if let Some(name) = doc.remove(&ed("ProcessName")) {
            doc.set("process.executable", name);
        }
        if item(doc, "IpAddress").is_some_and(|v| v != "-") {
            if let Some(ip) = doc.remove(&ed("IpAddress")) {
                doc.set("source.ip", ip);
            }
        }
        if let Some(port) = item(doc, "IpPort").filter(|v| v != "-") {
            doc.set("source.port", Value::Int(long_decode(&port)?));
            doc.remove(&ed("IpPort"));
        }
        if let Some(ws) = doc.remove(&ed("WorkstationName")) {
            doc.set("source.domain", ws);
        }
        if item(doc, "ClientAddress").is_some_and(|v| v != "-") {
            if let Some(address) = doc.remove(&ed("ClientAddress")) {
                doc.set("related.ip", address);
            }
        }
        if !doc.contains("process.name") {
            if let Some(exe) = doc.get_text("process.executable") {
                doc.set_str("process.name", last_segment(&exe));
            }
        }
        Ok(())
    }

    /// Event 4688: the new process, its parent and its command line.
    fn process_created(doc: &mut Doc) -> Step {
        if let Some(pid) = doc.remove(&ed("NewProcessId")) {
            let pid = match &pid {
                Value::Str(s) => Value::Int(long_decode(s)?),
                other => other.clone(),
            };
            doc.set("process.pid", pid);
        }
        if let Some(exe) = doc.remove(&ed("NewProcessName")) {
            doc.set("process.executable", exe);
        }
        if let Some(exe) = doc.remove(&ed("ParentProcessName")) {
            doc.set("process.parent.executable", exe);
        }
        for object in ["process", "process.parent"] {
            let name = format!("{object}.name");
            if !doc.contains(&name) {
                if let Some(exe) = doc.get_text(&format!("{object}.executable")) {
                    doc.set_str(name, last_segment(&exe));
                }
            }
        }
        if let Some(pid) = item(doc, "ProcessId") {
            doc.set("process.parent.pid", Value::Int(long_decode(&pid)?));
        }
        if let Some(cmd) = item(doc, "CommandLine") {
            let args = split_4688_command_line(&cmd);
            if !args.is_empty() {
                doc.set("process.args", strings(args));
            }
            doc.set_str("process.command_line", cmd);
        }
        if let Some(name) = item(doc, "TargetUserName").filter(|v| v != "-") {
            add_related_user(doc, &name);
        }
        Ok(())
    }

    /// The 4688 script's own command-line split: at whitespace outside double quotes,
    /// quotes kept, runs of spaces giving empty arguments.
    pub(super) fn split_4688_command_line(cmd: &str) -> Vec<String> {
        let chars: Vec<char> = cmd.chars().collect();
        let mut args = Vec::new();
        let (mut start, mut in_quote) = (0, false);
        for (i, c) in chars.iter().enumerate() {
            if *c == '"' {
                in_quote = !in_quote;
            }
            if java_whitespace(*c) && !in_quote {
                args.push(chars[start..i].iter().collect());
                start = i + 1;
            }
            if i == chars.len() - 1 {
                args.push(chars[start.min(i + 1)..=i].iter().collect());
            }
        }
        args
    }
}

/// Section D, first part: security descriptors of permission and audit-policy changes
/// (4670, 4817, 4907, 4908) spelled out, and `SidList`.
mod sddl {
    use super::*;

    pub(super) fn apply(doc: &mut Doc, code: &str) -> Step {
        if !["4670", "4817", "4907", "4908"].contains(&code) {
            return Ok(());
        }
        for prefix in ["OldSd", "NewSd"] {
            if let Some(sd) = item(doc, prefix) {
                enrich(doc, &sd, prefix)?;
            }
        }
        if let Some(list) = item(doc, "SidList") {
            let sids = split_on_token(&list, " ");
            let names: Vec<String> = sids
                .iter()
                .map(|s| {
                    translate_sid(&s.replace(['%', '{', '}', ' '], ""))
                        .unwrap_or_else(|| "null".into())
                })
                .collect();
            doc.set(ed("SidList"), strings(sids.iter().copied()));
            doc.set(ed("SidListDesc"), strings(names));
        }
        Ok(())
    }

    fn enrich(doc: &mut Doc, sd: &str, prefix: &str) -> Step {
        for (tag, field) in [("O:", "Owner"), ("G:", "Group")] {
            let b = sd.as_bytes();
            if sd.starts_with(tag) && b.len() >= 4 && b[2..4].iter().all(u8::is_ascii_uppercase) {
                if let Some(name) = translate_sid(&sd[..4]) {
                    doc.set_str(ed(&format!("{prefix}{field}")), name);
                }
            }
        }
        if let Some(dacl) = dacl_part(sd) {
            write_aces(doc, dacl, &format!("{prefix}Dacl"))?;
        }
        if let Some(sacl) = sacl_part(sd) {
            write_aces(doc, sacl, &format!("{prefix}Sacl"))?;
        }
        Ok(())
    }

    /// `(D:([A-Z]*(\(.*\))*))`: from the first `D:`, its flags and, when an ACE follows,
    /// everything up to the last `)` on the line.
    fn dacl_part(sd: &str) -> Option<&str> {
        let start = sd.find("D:")?;
        Some(&sd[start..start + acl_len(&sd[start + 2..]) + 2])
    }

    /// `(S:([A-Z]*(\(.*\))*))?$`: the first `S:` whose flags and ACEs reach the end.
    /// (Descriptors are single-line text; the line-terminator rules of `.` and `$` are not
    /// modelled.)
    fn sacl_part(sd: &str) -> Option<&str> {
        sd.match_indices("S:")
            .map(|(i, _)| i)
            .find(|&i| i + 2 + acl_len(&sd[i + 2..]) == sd.len())
            .map(|i| &sd[i..])
    }

    /// Length matched by `[A-Z]*(\(.*\))*` at the start of `rest`: the flags, then, when an
    /// ACE follows, everything up to the last `)`.
    fn acl_len(rest: &str) -> usize {
        let flags = rest.bytes().take_while(u8::is_ascii_uppercase).count();
        let after = &rest[flags..];
        match (after.starts_with('('), after.rfind(')')) {
            (true, Some(close)) => flags + close + 1,
            _ => flags,
        }
    }

    /// Every `\([^*)]*\)` ACE of an ACL, numbered, as `grantee :type (perms)`.
    fn write_aces(doc: &mut Doc, acl: &str, field: &str) -> Step {
        let mut index = 0;
        let mut rest = acl;
        while let Some(open) = rest.find('(') {
            let body = &rest[open + 1..];
            match body.find([')', '*']) {
                Some(end) if body.as_bytes()[end] == b')' => {
                    let ace = body[..end].replace('(', "");
                    let Ok((text, grantee)) = describe_ace(&ace) else {
                        return Err(Failure(format!("For input string in ACE \"{ace}\"")));
                    };
                    doc.set_str(ed(&format!("{field}{index}")), text);
                    if let Some(g) = grantee
                        .filter(|g| ["Administrator", "Guest", "KRBTGT"].contains(&g.as_str()))
                    {
                        add_related_user(doc, &g);
                    }
                    index += 1;
                    rest = &body[end + 1..];
                }
                Some(end) => rest = &body[end..],
                None => break,
            }
        }
        Ok(())
    }

    /// An ACE (`type;flags;rights;object;inherited;trustee`) in words, and its grantee.
    fn describe_ace(ace: &str) -> Result<(String, Option<String>), Failure> {
        let fields = split_on_token(ace, ";");
        let null = || "null".to_string();
        let grantee = fields.get(5).map(|sid| translate_sid(sid));
        let kind = lookup(t::ACE_TYPES, fields[0]).map_or_else(null, str::to_string);
        let perms = match fields.get(2) {
            Some(rights) => Some(rights_text(rights)?),
            None => None,
        };
        let grantee_text = grantee.clone().flatten().unwrap_or_else(null);
        let text = format!("{grantee_text} :{kind} ({})", perms.unwrap_or_else(null));
        Ok((text, grantee.flatten()))
    }

    /// The rights of an ACE as a Java list: flag names of a hexadecimal mask, or the words
    /// of each two-letter right.
    fn rights_text(rights: &str) -> Result<String, Failure> {
        let null = || "null".to_string();
        let names: Vec<String> = if rights.starts_with("0x") {
            permission_mask(rights)?
        } else {
            rights
                .chars()
                .collect::<Vec<_>>()
                .chunks(2)
                .map(|pair| {
                    let key: String = pair.iter().collect();
                    lookup(t::PERMISSIONS, &key).map_or_else(null, str::to_string)
                })
                .collect()
        };
        Ok(format!("[{}]", names.join(", ")))
    }

    fn permission_mask(mask: &str) -> Result<Vec<String>, Failure> {
        let names = flag_names(t::PERMISSION_FLAGS, long_decode(mask)?)?;
        Ok(if names.is_empty() {
            vec![mask.to_string()]
        } else {
            names.into_iter().map(str::to_string).collect()
        })
    }

    /// A SID or SDDL alias in words; a domain SID by its relative id (`None` when that id
    /// is not a well-known one).
    fn translate_sid(sid: &str) -> Option<String> {
        if let Some(name) = lookup(t::ACCOUNT_SIDS, sid) {
            return Some(name.to_string());
        }
        if !sid.starts_with("S-1-5-21") {
            return Some(sid.to_string());
        }
        let digits = sid
            .bytes()
            .rev()
            .take_while(u8::is_ascii_digit)
            .count()
            .min(5);
        if digits == 0 {
            return Some(sid.to_string());
        }
        lookup(t::DOMAIN_RIDS, &sid[sid.len() - digits..]).map(str::to_string)
    }
}

/// Section D, second part: the file of a share access (5140, 5145).
mod files {
    use super::*;

    pub(super) fn apply(doc: &mut Doc, code: &str) {
        let share = ["5140", "5145"].contains(&code);
        if share {
            if let Some(name) = item(doc, "RelativeTargetName").filter(|v| !v.is_empty()) {
                doc.set_str("file.name", name);
            }
            if let Some(dir) = item(doc, "ShareLocalPath").filter(|v| !v.is_empty()) {
                doc.set_str("file.directory", dir);
            }
        }
        let name = doc.get_text("file.name");
        if let (Some(dir), Some(name)) = (doc.get_text("file.directory"), &name) {
            doc.set_str(
                "file.path",
                format!("{}\\{}", mustache(&dir), mustache(name)),
            );
        }
        if let (true, Some(share_name), Some(name)) = (
            share,
            item(doc, "ShareName").filter(|v| !v.is_empty()),
            &name,
        ) {
            doc.set_str(
                "file.target_path",
                format!("{}\\{}", mustache(&share_name), mustache(name)),
            );
        }
        if let Some(name) = name {
            if let Some(i) = name.rfind('.') {
                doc.set_str("file.extension", &name[i + 1..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_decode_reads_as_java_does() {
        for (text, want) in [
            ("0x1fc", Some(508)),
            ("0X10", Some(16)),
            ("#ff", Some(255)),
            ("010", Some(8)),
            ("0", Some(0)),
            ("-0x10", Some(-16)),
            ("12", Some(12)),
            (" 12", None),
            ("0x", None),
            ("%%1538", None),
        ] {
            assert_eq!(long_decode(text).ok(), want, "{text}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_unwrap_anywhere() {
        assert_eq!(unwrap_ipv4_mapped("::ffff:10.47.0.122"), "10.47.0.122");
        assert_eq!(unwrap_ipv4_mapped("::1"), "::1");
        assert_eq!(unwrap_ipv4_mapped("x::ffff:1.2.3.4y"), "x1.2.3.4y");
        assert_eq!(unwrap_ipv4_mapped("::FFFF:1.2.3.4"), "::FFFF:1.2.3.4");
    }

    #[test]
    fn kerberos_ticket_options_come_out_in_map_order() {
        let names = flag_names(t::TICKET_OPTIONS, 0x40810010).ok();
        assert_eq!(
            names,
            Some(vec![
                "Forwardable",
                "Renewable-ok",
                "Name-canonicalize",
                "Renewable"
            ])
        );
    }

    #[test]
    fn the_4688_split_keeps_quotes_and_empty_arguments() {
        let split = process_and_source::split_4688_command_line;
        assert_eq!(
            split(r#""C:\Windows\system32\wevtutil.exe" cl Security"#),
            vec![r#""C:\Windows\system32\wevtutil.exe""#, "cl", "Security"]
        );
        assert_eq!(split("a  b "), vec!["a", "", "b", ""]);
        assert!(split("").is_empty());
    }
}
