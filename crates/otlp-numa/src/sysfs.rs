//! The default backend: Linux sysfs, read through a root path.

use std::fs;
use std::path::Path;

use crate::topology::{Backend, RawPu};
use crate::{CpuSet, NumaError, Topology};

fn read_file(path: &Path) -> Result<String, NumaError> {
    fs::read_to_string(path).map_err(|source| NumaError::Io {
        path: path.to_owned(),
        source,
    })
}

fn read_opt(path: &Path) -> Result<Option<String>, NumaError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(NumaError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse_num<T: std::str::FromStr>(what: &'static str, text: &str) -> Result<T, NumaError>
where
    T::Err: std::fmt::Display,
{
    text.trim().parse().map_err(|e: T::Err| NumaError::Parse {
        what,
        text: text.to_owned(),
        reason: e.to_string(),
    })
}

/// Ids of the `<prefix>N` entries of a directory, sorted.
fn numbered_entries(dir: &Path, prefix: &str) -> Result<Vec<usize>, NumaError> {
    let entries = fs::read_dir(dir).map_err(|source| NumaError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut ids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| NumaError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let name = entry.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.parse::<usize>().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// `MemTotal` of a node's `meminfo` (`Node 0 MemTotal:  16337284 kB`), in
/// bytes.
fn parse_meminfo(text: &str) -> Result<Option<u64>, NumaError> {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        // Either "Node N MemTotal: X kB" or "MemTotal: X kB".
        let rest: Vec<&str> = words.by_ref().collect();
        let Some(pos) = rest.iter().position(|w| *w == "MemTotal:") else {
            continue;
        };
        let value = rest.get(pos + 1).ok_or_else(|| NumaError::Parse {
            what: "meminfo",
            text: line.to_owned(),
            reason: "MemTotal has no value".into(),
        })?;
        let kib: u64 = parse_num("meminfo", value)?;
        let unit = rest.get(pos + 2).copied().unwrap_or("kB");
        let factor = match unit {
            "kB" => 1024,
            "B" => 1,
            other => {
                return Err(NumaError::Parse {
                    what: "meminfo",
                    text: line.to_owned(),
                    reason: format!("unknown unit {other:?}"),
                });
            }
        };
        return Ok(Some(kib.saturating_mul(factor)));
    }
    Ok(None)
}

pub(crate) fn read(root: &Path) -> Result<Topology, NumaError> {
    let cpu_dir = root.join("devices/system/cpu");
    let node_dir = root.join("devices/system/node");

    let online = match read_opt(&cpu_dir.join("online"))? {
        Some(text) => CpuSet::parse_cpulist(&text)?,
        None => numbered_entries(&cpu_dir, "cpu")?.into_iter().collect(),
    };
    if online.is_empty() {
        return Err(NumaError::NoCpus {
            root: root.to_owned(),
        });
    }

    // Nodes: (id, cpus, memory) and their distance rows.
    let mut nodes: Vec<(usize, CpuSet, Option<u64>)> = Vec::new();
    let mut distances: Vec<Vec<u32>> = Vec::new();
    if node_dir.is_dir() {
        let mut ids = numbered_entries(&node_dir, "node")?;
        if let Some(text) = read_opt(&node_dir.join("online"))? {
            let on = CpuSet::parse_cpulist(&text)?;
            ids.retain(|id| on.contains(*id));
        }
        for id in ids {
            let dir = node_dir.join(format!("node{id}"));
            let cpus =
                CpuSet::parse_cpulist(&read_file(&dir.join("cpulist"))?)?.intersection(&online);
            let memory = match read_opt(&dir.join("meminfo"))? {
                Some(text) => parse_meminfo(&text)?,
                None => None,
            };
            if let Some(text) = read_opt(&dir.join("distance"))? {
                let row = text
                    .split_whitespace()
                    .map(|d| parse_num::<u32>("distance", d))
                    .collect::<Result<Vec<_>, _>>()?;
                distances.push(row);
            }
            nodes.push((id, cpus, memory));
        }
        if !distances.is_empty()
            && (distances.len() != nodes.len() || distances.iter().any(|r| r.len() != nodes.len()))
        {
            return Err(NumaError::Parse {
                what: "distance",
                text: format!("{distances:?}"),
                reason: format!(
                    "the distance matrix is not {n}x{n} for {n} online nodes",
                    n = nodes.len()
                ),
            });
        }
    }
    if nodes.is_empty() {
        nodes.push((0, online.clone(), None));
        distances = vec![vec![10]];
    }
    let first_node = nodes[0].0;

    let mut raw = Vec::with_capacity(online.len());
    for cpu in &online {
        let topo = cpu_dir.join(format!("cpu{cpu}/topology"));
        let package = match read_opt(&topo.join("physical_package_id"))? {
            // Some hypervisors report -1: treat as package 0.
            Some(t) => parse_num::<i64>("physical_package_id", &t)?.max(0) as usize,
            None => 0,
        };
        let core_id = match read_opt(&topo.join("core_id"))? {
            Some(t) => parse_num::<i64>("core_id", &t)?.max(0) as usize,
            // No topology directory: every CPU is its own core.
            None => cpu,
        };
        // The sibling list names the core machine-wide; core_id does not
        // (the nodes of one package may reuse it). core_cpus_list is the
        // current name, thread_siblings_list the one older kernels have.
        let siblings = match read_opt(&topo.join("core_cpus_list"))? {
            Some(text) => Some(text),
            None => read_opt(&topo.join("thread_siblings_list"))?,
        };
        let core_key = match siblings {
            Some(text) => {
                let mut list = CpuSet::parse_cpulist(&text)?;
                list.insert(cpu);
                list.first()
            }
            None => None,
        };
        // A CPU listed by no node (should not happen) goes to the first node.
        let node = nodes
            .iter()
            .find(|(_, cpus, _)| cpus.contains(cpu))
            .map_or(first_node, |(id, _, _)| *id);
        raw.push(RawPu {
            cpu,
            package,
            core_id,
            node,
            core_key,
        });
    }
    Ok(Topology::assemble(
        raw,
        nodes.into_iter().map(|(id, _, mem)| (id, mem)).collect(),
        distances,
        Backend::Sysfs,
    ))
}

/// The fixture path helper is only for tests of this module.
#[cfg(test)]
fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parses_node_and_plain_forms() {
        let node = "Node 0 MemTotal:       16337284 kB\nNode 0 MemFree: 1 kB\n";
        assert_eq!(parse_meminfo(node).unwrap(), Some(16_337_284 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 4 kB").unwrap(), Some(4096));
        assert_eq!(parse_meminfo("nothing here").unwrap(), None);
        assert!(parse_meminfo("Node 0 MemTotal: x kB").is_err());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "reads fixture files; file access is isolated under Miri"
    )]
    fn missing_root_is_an_io_error_naming_the_path() {
        let err = read(&fixture("does-not-exist")).unwrap_err();
        assert!(matches!(err, NumaError::Io { .. }), "{err}");
        assert!(err.to_string().contains("does-not-exist"), "{err}");
    }
}
