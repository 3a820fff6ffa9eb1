"""Realistic comparison tasks for the demo: medicine and code, two responses each.

Generated from templates with a fixed seed so the demo is the same every time.
One response is the careful one, the other has a typical flaw an expert should
catch (a missed contraindication, an off-by-one, an unsafe shortcut).
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

MEDICINE = [
    ("amoxicillin", "acute otitis media", "a 4-year-old weighing 16 kg", "80-90 mg/kg/day divided twice daily",
     "penicillin allergy history must be checked first", "500 mg three times a day regardless of weight"),
    ("metformin", "type 2 diabetes", "a 58-year-old with eGFR 28 mL/min", "not to start metformin below eGFR 30",
     "renal function sets the limit, lactic acidosis risk", "start 500 mg twice daily and titrate up"),
    ("ibuprofen", "knee osteoarthritis pain", "a 72-year-old on warfarin", "to avoid NSAIDs and prefer paracetamol or topical agents",
     "NSAIDs with warfarin raise bleeding risk", "400 mg three times daily with food"),
    ("lisinopril", "hypertension", "a 30-year-old who is 10 weeks pregnant", "to avoid ACE inhibitors; labetalol or nifedipine instead",
     "ACE inhibitors are teratogenic", "10 mg once daily, checking potassium in two weeks"),
    ("sumatriptan", "migraine", "a 45-year-old with prior myocardial infarction", "to avoid triptans; use an NSAID or antiemetic",
     "triptans are vasoconstrictors contraindicated in coronary disease", "50 mg at onset, may repeat after 2 hours"),
    ("doxycycline", "community-acquired pneumonia", "a 7-year-old child", "amoxicillin rather than doxycycline for most children under 8",
     "tetracyclines stain developing teeth", "100 mg twice daily for 5 days"),
]

CODE = [
    ("Python", "return the n-th Fibonacci number", "memoise or iterate in O(n)",
     "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     "def fib(n):\n    return fib(n - 1) + fib(n - 2) if n > 1 else n", "exponential time for large n"),
    ("SQL", "find customers with no orders", "use NOT EXISTS or a LEFT JOIN ... IS NULL",
     "SELECT c.id FROM customers c\nWHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);",
     "SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders);", "NOT IN returns nothing if any customer_id is NULL"),
    ("JavaScript", "debounce a function", "clear the previous timer on each call",
     "function debounce(fn, ms) {\n  let t;\n  return (...args) => {\n    clearTimeout(t);\n    t = setTimeout(() => fn(...args), ms);\n  };\n}",
     "function debounce(fn, ms) {\n  return (...args) => setTimeout(() => fn(...args), ms);\n}", "never cancels earlier calls"),
    ("Python", "read a large CSV and sum a column", "stream rows instead of loading the file",
     "import csv\n\ndef total(path, col):\n    with open(path, newline='') as f:\n        return sum(float(r[col]) for r in csv.DictReader(f))",
     "def total(path, col):\n    rows = open(path).read().split('\\n')\n    return sum(float(r.split(',')[col]) for r in rows)", "breaks on quoted commas and leaks the file handle"),
    ("Bash", "delete files older than 30 days in a directory", "use find with -mtime and -delete, quoting the path",
     "find \"$DIR\" -type f -mtime +30 -delete", "rm -rf $DIR/$(ls -t $DIR | tail -n +30)", "unquoted path and wrong selection criterion"),
    ("Rust", "parse an integer from user input", "handle the error instead of panicking",
     "match input.trim().parse::<i64>() {\n    Ok(n) => println!(\"{n}\"),\n    Err(e) => eprintln!(\"not a number: {e}\"),\n}",
     "let n: i64 = input.parse().unwrap();", "panics on a trailing newline or bad input"),
]


def medicine_tasks(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(count):
        drug, condition, patient, good, reason, bad = MEDICINE[i % len(MEDICINE)]
        variant = i // len(MEDICINE)
        prompt = f"Case {variant + 1}: {patient} presents with {condition}. Is {drug} appropriate, and at what dose?"
        careful = (
            f"For {patient}, the guideline answer is {good}. The key point: {reason}. "
            f"Confirm allergies, renal function and current medicines before prescribing, and review in 48-72 hours."
        )
        flawed = f"{drug.capitalize()} is a standard choice for {condition}: give {bad}. Follow up if symptoms persist."
        responses = [{"model": "careful-model", "text": careful}, {"model": "fast-model", "text": flawed}]
        rng.shuffle(responses)
        yield {
            "external_id": f"med-{i:04d}",
            "prompt": [
                {"role": "system", "content": "You are a clinical decision-support assistant."},
                {"role": "user", "content": prompt},
            ] if i % 3 == 0 else prompt,
            "responses": responses,
            "metadata": {"specialty": "primary care", "template": drug},
        }


def code_tasks(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    for i in range(count):
        language, goal, hint, good_code, bad_code, flaw = CODE[i % len(CODE)]
        variant = i // len(CODE)
        prompt = f"In {language}, {goal}. (variant {variant + 1})"
        good = f"Here is a correct approach ({hint}):\n\n```\n{good_code}\n```\n"
        bad = f"Simple solution:\n\n```\n{bad_code}\n```\nThis works for typical inputs."
        responses = [{"model": "reviewer-model", "text": good}, {"model": "draft-model", "text": bad}]
        rng.shuffle(responses)
        yield {
            "external_id": f"code-{i:04d}",
            "prompt": prompt,
            "responses": responses,
            "metadata": {"language": language, "known_flaw": flaw},
        }
