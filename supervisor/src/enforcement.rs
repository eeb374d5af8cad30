//! Deciding, per layer, whether to apply it, let it degrade, or refuse the plugin.
//!
//! A layer the host lacks is a refusal unless the policy lists it as degradable.
//! Namespaces never degrade: without them there is no sandbox at all.

use crate::host_probe::HostFacts;
use wf_policy::spec::{Layer, LayerRequirements};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Apply,
    /// The host lacks the layer and the policy allows running without it.
    Degrade {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused: the {layer:?} layer is required but unavailable on this host: {reason} (policy {rule})")]
pub struct Refusal {
    pub layer: Layer,
    pub reason: String,
    pub rule: String,
}

/// Decide for `layer`, given whether the host has it (`Err(reason)` when it does not).
pub fn decide(layer: Layer, available: Result<(), String>, req: &LayerRequirements) -> Result<Decision, Refusal> {
    let Err(reason) = available else { return Ok(Decision::Apply) };
    let degradable = layer != Layer::Namespaces && req.degradable.value.contains(&layer);
    if degradable {
        Ok(Decision::Degrade { reason })
    } else {
        Err(Refusal { layer, reason, rule: req.required.origin.pointer.clone() })
    }
}

/// What the host offers for each layer that depends on kernel features.
pub fn host_has(layer: Layer, host: &HostFacts) -> Result<(), String> {
    match layer {
        Layer::Landlock => match host.landlock_abi {
            Some(abi) if abi >= 1 => Ok(()),
            _ => Err("Landlock is not available (not built in, or not in the lsm= list)".into()),
        },
        Layer::Seccomp if !host.seccomp => Err("seccomp filtering is not available".into()),
        Layer::Namespaces if !host.user_namespaces => Err("user namespaces are disabled".into()),
        _ => Ok(()),
    }
}

/// All decisions for the kernel-dependent layers, or the first refusal.
pub fn decide_all(host: &HostFacts, req: &LayerRequirements) -> Result<Vec<(Layer, Decision)>, Refusal> {
    [Layer::Namespaces, Layer::Landlock, Layer::Seccomp]
        .into_iter()
        .map(|layer| decide(layer, host_has(layer, host), req).map(|d| (layer, d)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_policy::spec::{Origin, Sourced};

    fn req(degradable: Vec<Layer>) -> LayerRequirements {
        LayerRequirements {
            required: Sourced::new(vec![Layer::Landlock, Layer::Seccomp], Origin::policy("/sandbox/required_layers")),
            degradable: Sourced::new(degradable, Origin::policy("/sandbox/degradable_layers")),
        }
    }

    #[test]
    fn missing_layer_is_refused_unless_degradable() {
        let refusal = decide(Layer::Landlock, Err("absent".into()), &req(vec![])).unwrap_err();
        assert_eq!(refusal.layer, Layer::Landlock);
        assert_eq!(refusal.rule, "/sandbox/required_layers");
        let degraded = decide(Layer::Landlock, Err("absent".into()), &req(vec![Layer::Landlock])).unwrap();
        assert_eq!(degraded, Decision::Degrade { reason: "absent".into() });
    }

    #[test]
    fn namespaces_never_degrade() {
        assert!(decide(Layer::Namespaces, Err("off".into()), &req(vec![Layer::Namespaces])).is_err());
    }

    #[test]
    fn present_layer_is_applied() {
        assert_eq!(decide(Layer::Seccomp, Ok(()), &req(vec![])).unwrap(), Decision::Apply);
    }
}
