//! A flag's values: boolean and variant flags, references to variants, variant pins.

use super::*;

impl Compiler {
    pub(super) fn boolean_values(
        &mut self,
        key: &Spanned<String>,
        e: &FlagEntry,
    ) -> Option<(Vec<VariantDef>, VariantIdx, VariantIdx)> {
        let k = key.value.as_str();
        for (field, present) in [
            ("variants", e.variants.as_ref().map(|_| At::from(key))),
            ("default_variant", e.default_variant.as_ref().map(At::from)),
            ("rollout_variant", e.rollout_variant.as_ref().map(At::from)),
        ] {
            if let Some(at) = present {
                self.error(at, format!("{k}.{field}"), format!("`{field}` is for variant flags; add `type: variant`"));
            }
        }
        let default = match &e.default_value {
            None => false,
            Some(v) => match v.value {
                Value::Bool(b) => b,
                _ => {
                    self.error(
                        v.into(),
                        format!("{k}.default_value"),
                        "a boolean flag's default_value is true or false",
                    );
                    return None;
                }
            },
        };
        let rollout = match &e.rollout_value {
            None => !default,
            Some(v) => match v.value {
                Value::Bool(b) => b,
                _ => {
                    self.error(
                        v.into(),
                        format!("{k}.rollout_value"),
                        "a boolean flag's rollout_value is true or false",
                    );
                    return None;
                }
            },
        };
        let variants = vec![
            VariantDef { name: "off".to_owned(), value: Value::Bool(false) },
            VariantDef { name: "on".to_owned(), value: Value::Bool(true) },
        ];
        Some((variants, usize::from(default), usize::from(rollout)))
    }

    pub(super) fn variant_values(
        &mut self,
        key: &Spanned<String>,
        e: &FlagEntry,
    ) -> Option<(Vec<VariantDef>, VariantIdx, VariantIdx)> {
        let k = key.value.as_str();
        for (field, present) in [
            ("default_value", e.default_value.as_ref().map(At::from)),
            ("rollout_value", e.rollout_value.as_ref().map(At::from)),
        ] {
            if let Some(at) = present {
                self.error(
                    at,
                    format!("{k}.{field}"),
                    format!("`{field}` is for boolean flags; variant flags use default_variant/rollout_variant"),
                );
            }
        }
        let Some(vs) = e.variants.as_ref().filter(|v| !v.is_empty()) else {
            self.error(key.into(), format!("{k}.variants"), "a variant flag needs at least one variant");
            return None;
        };
        let mut variants = Vec::with_capacity(vs.len());
        let mut first_kind: Option<&'static str> = None;
        for (name, value) in vs.iter() {
            let path = format!("{k}.variants.{}", name.value);
            if name.value.is_empty() {
                self.error(name.into(), &path, "variant names cannot be empty");
            }
            let kind = kind_of(&value.value);
            if kind == "null" {
                self.error(value.into(), &path, "a variant value cannot be null");
            }
            match first_kind {
                None => first_kind = Some(kind),
                Some(first) if first != kind => self.error(
                    value.into(),
                    &path,
                    format!("variant values must all have one type: this one is {kind}, the first is {first}"),
                ),
                Some(_) => {}
            }
            variants.push(VariantDef { name: name.value.clone(), value: value.value.clone() });
        }
        let find = |name: &str| variants.iter().position(|v| v.name == name);
        let names = || variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ");
        let Some(dv) = &e.default_variant else {
            self.error(
                key.into(),
                format!("{k}.default_variant"),
                "a variant flag needs default_variant (its safe value)",
            );
            return None;
        };
        let Some(default) = find(&dv.value) else {
            self.error(
                dv.into(),
                format!("{k}.default_variant"),
                format!("{:?} is not a variant of this flag (variants: {})", dv.value, names()),
            );
            return None;
        };
        let rollout = match &e.rollout_variant {
            None => default,
            Some(rv) => {
                if let Some(i) = find(&rv.value) {
                    i
                } else {
                    self.error(
                        rv.into(),
                        format!("{k}.rollout_variant"),
                        format!("{:?} is not a variant of this flag (variants: {})", rv.value, names()),
                    );
                    return None;
                }
            }
        };
        Some((variants, default, rollout))
    }

    pub(super) fn variant_ref(
        &mut self,
        name: &Spanned<String>,
        variants: &[VariantDef],
        path: &str,
    ) -> Option<VariantIdx> {
        let found = variants.iter().position(|v| v.name == name.value);
        if found.is_none() {
            let names = variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(", ");
            self.error(
                name.into(),
                path,
                format!("{:?} is not a variant of this flag (variants: {names})", name.value),
            );
        }
        found
    }

    pub(super) fn overrides(
        &mut self,
        k: &str,
        kind: FlagKind,
        variants: &[VariantDef],
        e: &FlagEntry,
    ) -> HashMap<String, VariantIdx> {
        let mut out = HashMap::new();
        let Some(map) = &e.overrides else { return out };
        if kind == FlagKind::Boolean {
            if let Some((first, _)) = map.0.first() {
                self.error(first.into(), format!("{k}.overrides"), "overrides pin variants; add `type: variant`");
            }
            return out;
        }
        for (name, values) in map.iter() {
            let path = format!("{k}.overrides.{}", name.value);
            let Some(idx) = self.variant_ref(name, variants, &path) else { continue };
            for v in values {
                match scalar_text(&v.value) {
                    Some(text) => {
                        if let Some(prev) = out.insert(text.clone(), idx)
                            && prev != idx
                        {
                            self.error(
                                v.into(),
                                &path,
                                format!("{text:?} is already pinned to variant {:?}", variants[prev].name),
                            );
                        }
                    }
                    None => self.error(v.into(), &path, "override values are stickiness values (strings or numbers)"),
                }
            }
        }
        out
    }
}
