//! Sweep axes: a list where one value is expected is an axis; `zip` groups tie axes that vary
//! together; the grid is the product of the (tied) axes, first axis outermost. Dotted spec keys
//! (`train.lr`) name what an axis sets, written either quoted (`"train.lr" = […]`) or as nested
//! tables (`train.lr = […]`, `[sweep.train]`).

use super::error::Key;

/// One axis before tying: its dotted name, its values, and where it is written.
#[derive(Debug, Clone)]
pub struct Single<T> {
    pub name: String,
    pub values: Vec<T>,
    pub at: Vec<Key>,
}

/// Axes that vary together (one `zip` group, or a single axis): the names, and one row of
/// values (one per name) per step.
#[derive(Debug, Clone)]
pub struct Axis<T> {
    pub names: Vec<String>,
    pub rows: Vec<Vec<T>>,
}

/// A spec error before it is located: the key path and the message.
pub type Located = (Vec<Key>, String);

/// Ties the axes named together in `zip` groups (each group's axes must have equal lengths; a
/// name may be in one group only and must be an axis); the rest stay single. `zip_at` locates
/// the `zip` key, `what` names the place in messages (`cosface`, `sweep`).
pub fn tie<T: Clone>(
    singles: Vec<Single<T>>,
    zip: &[Vec<String>],
    zip_at: &[Key],
    what: &str,
) -> Result<Vec<Axis<T>>, Located> {
    for (g, group) in zip.iter().enumerate() {
        for name in group {
            if !singles.iter().any(|s| &s.name == name) {
                return Err((
                    zip_at.to_vec(),
                    format!("{what}.zip: \"{name}\" is not a list set here, so it cannot be zipped"),
                ));
            }
            if zip[..g].iter().flatten().any(|n| n == name) || group.iter().filter(|n| *n == name).count() > 1 {
                return Err((zip_at.to_vec(), format!("{what}.zip: \"{name}\" may be in one zip group only, once")));
            }
        }
    }
    let mut axes: Vec<Axis<T>> = Vec::new();
    let mut group_axis: Vec<Option<usize>> = vec![None; zip.len()];
    for single in singles {
        let Some(g) = zip.iter().position(|group| group.contains(&single.name)) else {
            axes.push(Axis { names: vec![single.name], rows: single.values.into_iter().map(|v| vec![v]).collect() });
            continue;
        };
        match group_axis[g] {
            None => {
                group_axis[g] = Some(axes.len());
                axes.push(Axis {
                    names: vec![single.name],
                    rows: single.values.into_iter().map(|v| vec![v]).collect(),
                });
            }
            Some(a) => {
                let axis = &mut axes[a];
                if axis.rows.len() != single.values.len() {
                    return Err((
                        single.at,
                        format!(
                            "{what}.{}: zipped axes must have equal lengths ({} vs {} for {})",
                            single.name,
                            single.values.len(),
                            axis.rows.len(),
                            axis.names[0]
                        ),
                    ));
                }
                axis.names.push(single.name);
                for (row, v) in axis.rows.iter_mut().zip(single.values) {
                    row.push(v);
                }
            }
        }
    }
    Ok(axes)
}

/// Every combination of the axes' rows, as (name, value) pairs in axis order.
pub fn grid<T: Clone>(axes: &[Axis<T>]) -> Vec<Vec<(String, T)>> {
    let mut out: Vec<Vec<(String, T)>> = vec![Vec::new()];
    for axis in axes {
        out = out
            .into_iter()
            .flat_map(|partial| {
                axis.rows.iter().map(move |row| {
                    let mut combo = partial.clone();
                    combo.extend(axis.names.iter().cloned().zip(row.iter().cloned()));
                    combo
                })
            })
            .collect();
    }
    out
}

/// The `zip = [["a", "b"], …]` groups of a table (`None` → no groups); `at` locates `zip`.
pub fn zip_groups(value: Option<&toml::Value>, at: &[Key], what: &str) -> Result<Vec<Vec<String>>, Located> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let expected =
        || (at.to_vec(), format!("{what}.zip: expected a list of lists of names, e.g. zip = [[\"s\", \"m\"]]"));
    let mut out = Vec::new();
    for group in value.as_array().ok_or_else(expected)? {
        let names = group.as_array().ok_or_else(expected)?;
        out.push(names.iter().map(|n| n.as_str().map(str::to_string).ok_or_else(expected)).collect::<Result<_, _>>()?);
    }
    Ok(out)
}

/// The dotted keys of `table` (nested tables flattened: `train = { lr = … }` is `train.lr`), each
/// with its value and key path, in file order; `skip` names top-level keys that are not keys of
/// the spec (`name`, `zip`).
pub fn dotted<'a>(table: &'a toml::Table, at: &[Key], skip: &[&str]) -> Vec<(String, &'a toml::Value, Vec<Key>)> {
    let mut out = Vec::new();
    for (k, v) in table {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let mut here = at.to_vec();
        here.push(Key::from(k.as_str()));
        match v {
            toml::Value::Table(inner) => {
                for (name, value, keys) in dotted(inner, &here, &[]) {
                    out.push((format!("{k}.{name}"), value, keys));
                }
            }
            _ => out.push((k.clone(), v, here)),
        }
    }
    out
}

/// Sets the dotted key `name` in `table` to `value`, creating tables on the way.
pub fn set(table: &mut toml::Table, name: &str, value: toml::Value) {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().expect("a key has at least one part");
    let mut t = table;
    for p in parts {
        let entry = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        t = entry.as_table_mut().expect("just made a table");
    }
    t.insert(last.to_string(), value);
}

/// Whether `value` is a sweep of a key whose single values are `list_valued` (lists themselves,
/// such as `model.widths`): a list of lists then, a list of scalars otherwise.
pub fn is_sweep(value: &toml::Value, list_valued: bool) -> bool {
    match value.as_array() {
        None => false,
        Some(items) if list_valued => items.iter().all(toml::Value::is_array) && !items.is_empty(),
        Some(_) => true,
    }
}

/// A value as a short label part (`0.1`, `16x32`, `true`, `sum`).
pub fn short(value: &toml::Value) -> String {
    match value {
        toml::Value::Float(f) => crate::loss::format_float(*f),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::String(s) => s.clone(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(items) => items.iter().map(short).collect::<Vec<_>>().join("x"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(name: &str, values: &[i64]) -> Single<i64> {
        Single { name: name.into(), values: values.to_vec(), at: Vec::new() }
    }

    #[test]
    fn grids_and_zips() {
        let axes = tie(vec![single("a", &[1, 2]), single("b", &[3, 4]), single("c", &[5])], &[], &[], "t").unwrap();
        assert_eq!(grid(&axes).len(), 4);
        let tied = tie(vec![single("a", &[1, 2]), single("b", &[3, 4])], &[vec!["a".into(), "b".into()]], &[], "t");
        let g = grid(&tied.unwrap());
        assert_eq!(g, vec![vec![("a".into(), 1), ("b".into(), 3)], vec![("a".into(), 2), ("b".into(), 4)]]);
        assert!(tie(vec![single("a", &[1, 2]), single("b", &[3])], &[vec!["a".into(), "b".into()]], &[], "t").is_err());
        assert!(tie(vec![single("a", &[1])], &[vec!["z".into()]], &[], "t").is_err());
    }

    #[test]
    fn dotted_keys_flatten_and_set() {
        let t: toml::Table = toml::from_str("\"train.lr\" = [1]\n[data]\nidentities = [2]\n").unwrap();
        let keys: Vec<String> = dotted(&t, &[], &[]).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["data.identities", "train.lr"]);
        let mut base = toml::Table::new();
        set(&mut base, "train.lr", toml::Value::Float(0.5));
        assert_eq!(base["train"]["lr"].as_float(), Some(0.5));
        assert!(is_sweep(&toml::Value::Array(vec![toml::Value::Integer(1)]), false));
        let widths: toml::Value = toml::Value::Array(vec![toml::Value::Integer(16), toml::Value::Integer(32)]);
        assert!(!is_sweep(&widths, true));
        assert_eq!(short(&widths), "16x32");
    }
}
