//! Prints the Task priority the built-in rules give each line of stdin
//! (a quick way to try a phrase): `cargo run --example try_tasks < lines.txt`.
use recordbridge::decide::task::TaskRules;
use std::io::BufRead;

fn main() {
    let rules = TaskRules::builtin();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let p = rules.request(&line).map(|p| p.as_str()).unwrap_or("-");
        println!("{p:8} {line}");
    }
}
