//! Prints redb's storage statistics of an index file (for sizing work):
//! `cargo run --release -p ccvault-index --example index_stats -- DIR/index.redb`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: index_stats INDEX.redb")?;
    let db = redb::Database::open(&path)?;
    let txn = db.begin_write()?;
    let s = txn.stats()?;
    println!(
        "tree height {}\nallocated pages {}\nleaf pages {}\nbranch pages {}\nstored bytes {}\nmetadata bytes {}\nfragmented bytes {}\npage size {}",
        s.tree_height(),
        s.allocated_pages(),
        s.leaf_pages(),
        s.branch_pages(),
        s.stored_bytes(),
        s.metadata_bytes(),
        s.fragmented_bytes(),
        s.page_size()
    );
    txn.abort()?;
    Ok(())
}
