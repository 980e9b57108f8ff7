//! Helpers shared by the store's integration tests.

/// Event `i` of the test streams: interaction `int-{i}-t`, agent `ag{i % 3}`.
pub fn event(i: u64) -> String {
    format!(
        r#"{{"Interaction":{{"event":"InteractionQueued","interactionGUID":"int-{i}-t","agentId":"ag{}","interactionEventTS":{}}}}}"#,
        i % 3,
        1_763_900_000 + i
    )
}
