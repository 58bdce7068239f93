//! The order containers start in: each after the components it `depends_on`, and the errors
//! of dependencies that name nothing or go round in a cycle.

use std::collections::{BTreeMap, BTreeSet};

use super::loaded::LoadedComponents;
use crate::inputs::diagnostic::Diagnostic;
use crate::inputs::document::escape_pointer;

impl LoadedComponents {
    pub(super) fn dependency_problems(&self) -> Vec<Diagnostic> {
        let names: BTreeSet<&String> = self.containers().map(|(n, _)| n).collect();
        let mut out = Vec::new();
        for (name, component) in self.containers() {
            for (i, dep) in component.depends_on.names().enumerate() {
                if !names.contains(dep) {
                    out.push(self.at(
                        &format!(
                            "/components/{}{}",
                            escape_pointer(name),
                            component.depends_on.pointer(i)
                        ),
                        format!("component \"{name}\" depends on \"{dep}\", which is not an enabled container component"),
                        "name another component of this file that has an image and is enabled",
                    ));
                }
            }
        }
        if out.is_empty()
            && let Err(cycle) = self.dependency_order()
        {
            out.push(self.at(
                &format!("/components/{}/depends_on", escape_pointer(&cycle[0])),
                format!("depends_on forms a cycle: {}", cycle.join(" -> ")),
                "remove one of the dependencies",
            ));
        }
        out
    }

    /// Container component names, each after the ones it depends on (ties by name).
    pub fn dependency_order(&self) -> Result<Vec<String>, Vec<String>> {
        let deps: BTreeMap<&String, Vec<String>> = self
            .containers()
            .map(|(n, c)| (n, c.depends_on.names().cloned().collect()))
            .collect();
        let mut order: Vec<String> = Vec::new();
        let mut visiting: Vec<String> = Vec::new();
        fn visit(
            name: &String,
            deps: &BTreeMap<&String, Vec<String>>,
            order: &mut Vec<String>,
            visiting: &mut Vec<String>,
        ) -> Result<(), Vec<String>> {
            if order.contains(name) {
                return Ok(());
            }
            if let Some(i) = visiting.iter().position(|v| v == name) {
                let mut cycle = visiting[i..].to_vec();
                cycle.push(name.clone());
                return Err(cycle);
            }
            visiting.push(name.clone());
            for dep in deps.get(name).into_iter().flatten() {
                visit(dep, deps, order, visiting)?;
            }
            visiting.pop();
            order.push(name.clone());
            Ok(())
        }
        for name in deps.keys() {
            visit(name, &deps, &mut order, &mut visiting)?;
        }
        Ok(order)
    }
}

#[cfg(test)]
mod tests {
    use crate::inputs::components::tests::load;
    use indoc::indoc;

    #[test]
    fn unknown_dependencies_and_cycles_are_errors_at_their_place() {
        let errs = load(indoc! {r#"
            [components.a]
            image = "x"
            depends_on = ["nope"]
        "#})
        .unwrap_err();
        assert_eq!(
            errs[0].headline(),
            "/p/components.toml:3:15: component \"a\" depends on \"nope\", which is not an enabled container component"
        );
        let errs = load(indoc! {r#"
            [components.a]
            image = "x"
            depends_on = ["b"]
            [components.b]
            image = "x"
            depends_on = ["a"]
        "#})
        .unwrap_err();
        assert!(errs[0].message.contains("cycle: a -> b -> a"), "{errs:?}");
    }
}
