//! Connect to a running appliance's bridge and publish a small batch.
//!
//! `cargo run -p tachyon-bridge --example publish -- [/dev/shm/tachyon-rte.bridge]`

use tachyon_bridge::Bridge;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(Into::into).unwrap_or_else(|| Bridge::default_path("rte"));
    let bridge = Bridge::connect(&path)?;
    println!(
        "connected to {} ({} shards, max message {} bytes)",
        path.display(),
        bridge.shards(),
        bridge.max_message_bytes()
    );
    // Three messages, Arrow binary-column layout: payload i = payloads[offsets[i]..offsets[i+1]].
    let topics = [1u32, 2, 3];
    let senders = [7u32, 7, 7];
    let payloads = b"helloworld!!";
    let offsets = [0u64, 5, 10, 12];
    let report = bridge.publish_batch(&topics, &senders, payloads, &offsets)?;
    println!("accepted per shard: {:?}", report.accepted);
    if !report.all_accepted() {
        println!("refused shards (backpressure): {:?}", report.refused_shards);
        println!("per-message accepted: {:?}", report.accepted_mask(&topics));
    }
    Ok(())
}
