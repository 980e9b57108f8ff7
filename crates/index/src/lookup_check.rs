//! What `verify` checks of the index's B-trees beyond their contents:
//! that a lookup finds each entry. The other checks read every table in
//! key order, which follows the pages' links; a lookup descends through
//! the keys of the branch pages instead. One damaged branch key leaves
//! every entry readable in order and routes the lookups of some keys past
//! them: the duplicate check then finds no earlier copy and archives one
//! again, and `show` misses records (an outside audit: single flipped
//! bytes of an index did so, and `verify` said clean).
//!
//! Guarantees: every entry of every table the answers and the duplicate
//! check look up by key is looked up by its own key, and a table where one
//! is not found is named with how many. Memory is constant; the cost is one
//! lookup an entry (a few hundred thousand at a million records).

use redb::{Key, ReadableTable, TableDefinition, TableHandle, Value};

use crate::error::AtPath;
use crate::guard::guarded;
use crate::schema::{
    BY_AGENT, BY_GUID, BY_PAYLOAD, FILTERS, GUID_BLOCKS, KEY_RANGES, QUARANTINE, SPAN_FILTERS,
};
use crate::{IndexReader, Result};

impl IndexReader {
    /// Each table of the index where an entry is not found by a lookup of
    /// its own key, one sentence a table (see the module).
    pub fn lookup_problems(&self) -> Result<Vec<String>> {
        guarded(&self.path, || {
            let mut problems = Vec::new();
            self.entries_found_by_lookup(BY_GUID, &mut problems)?;
            self.entries_found_by_lookup(BY_AGENT, &mut problems)?;
            self.entries_found_by_lookup(BY_PAYLOAD, &mut problems)?;
            self.entries_found_by_lookup(FILTERS, &mut problems)?;
            self.entries_found_by_lookup(SPAN_FILTERS, &mut problems)?;
            self.entries_found_by_lookup(GUID_BLOCKS, &mut problems)?;
            self.entries_found_by_lookup(KEY_RANGES, &mut problems)?;
            self.entries_found_by_lookup(QUARANTINE, &mut problems)?;
            Ok(problems)
        })
    }

    fn entries_found_by_lookup<K: Key + 'static, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
        problems: &mut Vec<String>,
    ) -> Result<()> {
        let Some(table) = self.table(def)? else {
            return Ok(());
        };
        let (mut entries, mut missed) = (0u64, 0u64);
        for item in table.iter().at(&self.path)? {
            let (key, _) = item.at(&self.path)?;
            entries += 1;
            if table.get(key.value()).at(&self.path)?.is_none() {
                missed += 1;
            }
        }
        if missed > 0 {
            problems.push(format!(
                "{missed} of the {entries} entries of the index's `{}` table are not found by a lookup of their own key (a damaged page routes lookups past them: duplicates of their records would be archived again, and reads miss them); `ccvault reindex` rebuilds the index",
                def.name()
            ));
        }
        Ok(())
    }
}
