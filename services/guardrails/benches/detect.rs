//! The detectors with every kind chosen, on about a kilobyte of prompt: ordinary prose
//! without any entity (the common case, which must cost next to nothing), prose with
//! numbers that are not entities, and prose with a few entities in it.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tollgate_guardrails::detect::{Detectors, EntityKind};

const PROSE: &str = "Could you help me rewrite the introduction of our quarterly report? \
The first draft reads too much like a list of numbers and not enough like a story. \
We want readers to understand, in a few sentences, why the team changed its plans in the \
spring, what it learned from the customers it interviewed, and where it expects to be by \
the end of the year. Please keep the tone friendly but professional, avoid jargon where a \
plain word will do, and make sure each paragraph has one clear idea. The current version \
mentions the new warehouse, the delayed product launch and the hiring of two engineers, \
but it never explains how these things are connected. I would also like a short closing \
paragraph that thanks the partners who worked with us through a difficult season. If you \
think the structure should change, suggest an outline first, with a sentence or two for \
each section, before writing the full text. Finally, point out any claims that sound \
vague or that a careful reader might question, so that we can add evidence for them.";

const WITH_ENTITIES: &str = "Could you help me rewrite the introduction of our quarterly \
report? Send the draft to jane.doe@example.com or call me on +44 20 7946 0958 before Friday. \
We want readers to understand, in a few sentences, why the team changed its plans in the \
spring, what it learned from the customers it interviewed, and where it expects to be by \
the end of the year. The refund for order 20240512 went to card 4111 1111 1111 1111 and \
the supplier's IBAN is GB82 WEST 1234 5698 7654 32. Please keep the tone friendly but \
professional, avoid jargon where a plain word will do, and make sure each paragraph has \
one clear idea. The staging server at 192.0.2.10 still uses the key AKIAIOSFODNN7EXAMPLE, \
which we will rotate. I would also like a short closing paragraph that thanks the partners \
who worked with us through a difficult season. If you think the structure should change, \
suggest an outline first, before writing the full text, version 2.3.1 at the latest.";

/// Prose with numbers that are none of the entities (dates, prices, versions, times).
const WITH_NUMBERS: &str = "Could you help me rewrite the introduction of our 2024 \
report? The first draft reads too much like a list of numbers: revenue grew 14% to $2.3 \
million, 3 of our 12 stores opened in March, and version 2.3.1 of the app shipped on 12 May. \
We want readers to understand, in a few sentences, why the team changed its plans in the \
spring, what it learned from the 45 customers it interviewed, and where it expects to be by \
the end of the year. Please keep the tone friendly but professional, avoid jargon where a \
plain word will do, and make sure each paragraph has one clear idea. The current version \
mentions the new warehouse (opened at 9:30 on 1 April), the delayed product launch and the \
hiring of two engineers, but it never explains how these things are connected. I would \
also like a short closing paragraph that thanks the 7 partners who worked with us through \
a difficult season. If you think the structure should change, suggest an outline first, \
with a sentence or two for each of the 4 sections, before writing the full text.";

fn detect(c: &mut Criterion) {
    let detectors = Detectors::new(&EntityKind::ALL);
    let mut group = c.benchmark_group("find_all_kinds");
    for (name, text) in [
        ("prose_1kb", PROSE),
        ("numbers_1kb", WITH_NUMBERS),
        ("entities_1kb", WITH_ENTITIES),
    ] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| detectors.find(black_box(text))));
    }
    group.finish();

    // Where the time goes: each kind alone on the prose with a few entities.
    let mut group = c.benchmark_group("find_one_kind");
    group.throughput(Throughput::Bytes(WITH_ENTITIES.len() as u64));
    for kind in EntityKind::ALL {
        let detectors = Detectors::new(&[kind]);
        group.bench_function(kind.name(), |b| {
            b.iter(|| detectors.find(black_box(WITH_ENTITIES)))
        });
    }
    group.finish();
}

criterion_group!(benches, detect);
criterion_main!(benches);
