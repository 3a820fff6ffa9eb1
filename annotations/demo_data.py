"""Realistic comparison tasks for the demo: medicine and code, two responses each.

Generated with a fixed seed so the demo is the same every time. Every task is
a different case (its own patient or its own codebase context); one response
is the careful one, the other has a typical flaw an expert should catch (a
missed contraindication, an off-by-one, an unsafe shortcut). Which model wrote
which is drawn from a pool of plausible model names; ``metadata.careful_model``
lets the demo seed play the part of experts who know the answer.
"""
from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

MODELS = ["llama-3.1-70b-instruct", "mistral-large-2407", "qwen2.5-72b-instruct", "gemma-2-27b-it",
          "command-r-plus-08-2024", "phi-3.5-mini-instruct"]

# (drug, condition, patient detail builder, guideline answer, the reason, the flawed shortcut)
MEDICINE = [
    ("amoxicillin", "acute otitis media", lambda r: f"a {r.randint(2, 6)}-year-old weighing {r.randint(12, 22)} kg",
     "high-dose amoxicillin, 80-90 mg/kg/day in two divided doses", "check for penicillin allergy first; weight sets the dose",
     "500 mg three times a day regardless of weight"),
    ("metformin", "newly diagnosed type 2 diabetes", lambda r: f"a {r.randint(50, 80)}-year-old with eGFR {r.randint(18, 29)} mL/min",
     "not to start metformin below eGFR 30; a DPP-4 inhibitor dosed for renal function is an option",
     "renal clearance sets the limit and lactic acidosis is the risk", "start 500 mg twice daily and titrate up"),
    ("ibuprofen", "knee osteoarthritis pain", lambda r: f"a {r.randint(65, 88)}-year-old taking warfarin (INR {r.choice(['2.3', '2.6', '2.9', '3.1'])})",
     "to avoid oral NSAIDs; paracetamol or a topical NSAID is safer", "NSAIDs with warfarin raise the bleeding risk",
     "400 mg three times daily with food"),
    ("lisinopril", "raised blood pressure", lambda r: f"a {r.randint(24, 40)}-year-old who is {r.randint(8, 20)} weeks pregnant",
     "to avoid ACE inhibitors; labetalol or nifedipine are first line in pregnancy", "ACE inhibitors harm the fetal kidney",
     "10 mg once daily, checking potassium in two weeks"),
    ("sumatriptan", "migraine with aura", lambda r: f"a {r.randint(42, 66)}-year-old with a myocardial infarction {r.randint(1, 6)} years ago",
     "to avoid triptans; an NSAID with an antiemetic is preferred", "triptans constrict coronary arteries",
     "50 mg at onset, repeated after 2 hours if needed"),
    ("doxycycline", "community-acquired pneumonia", lambda r: f"a {r.randint(3, 7)}-year-old child",
     "oral amoxicillin for most children under 8", "tetracyclines stain developing teeth", "100 mg twice daily for 5 days"),
    ("tramadol", "post-operative pain", lambda r: f"a {r.randint(30, 60)}-year-old taking sertraline {r.choice([50, 100, 150])} mg",
     "to prefer another analgesic, or use tramadol only with close monitoring", "tramadol with an SSRI risks serotonin syndrome",
     "50-100 mg every 6 hours as needed"),
    ("clarithromycin", "an acute sinus infection", lambda r: f"a {r.randint(45, 75)}-year-old on simvastatin 40 mg",
     "to choose doxycycline or pause the statin during the course", "clarithromycin blocks CYP3A4 and raises the risk of myopathy",
     "500 mg twice daily for 7 days"),
    ("prednisolone", "an asthma flare", lambda r: f"a {r.randint(20, 70)}-year-old with type 1 diabetes (HbA1c {r.randint(52, 75)} mmol/mol)",
     "a short course of 40-50 mg daily with more frequent glucose checks", "steroids raise blood glucose for days",
     "40 mg daily for 5 days, no other changes"),
    ("nitrofurantoin", "an uncomplicated urinary tract infection", lambda r: f"a {r.randint(70, 92)}-year-old with eGFR {r.randint(20, 44)} mL/min",
     "an alternative such as pivmecillinam when eGFR is below 45", "nitrofurantoin fails and harms when renal function is poor",
     "100 mg modified-release twice daily for 3 days"),
]

QUESTIONS = [
    "{patient} presents with {condition}. Is {drug} appropriate, and at what dose?",
    "I'm seeing {patient} with {condition}. Would you prescribe {drug}? What dose?",
    "Quick check before I sign: {drug} for {condition} in {patient}. OK?",
    "{condition_cap} in {patient}. The plan says {drug}. Anything I should change?",
]
CAREFUL = [
    "No, not as written. For {patient} the guideline answer is {good}. The reason: {reason}.",
    "I would change the plan. {reason_cap}, so for {patient} the better choice is {good}.",
    "Careful here: {reason}. The recommendation for this patient is {good}; document the reasoning.",
]
CAREFUL_CLOSERS = [
    "Review in 48-72 hours.", "Ask them to come back sooner if symptoms worsen.",
    "Check the interaction list against their current medicines.", "Recheck the relevant bloods at follow-up.",
    "Give written safety-netting advice.", "",
]
FLAWED = [
    "{drug_cap} is a standard choice for {condition}: give {bad}.",
    "Yes, {drug} is fine. Typical dosing is {bad}.",
    "Go ahead with {drug}, {bad}. Follow up if it doesn't settle.",
]


def medicine_tasks(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    i = 0
    while i < count:
        drug, condition, patient_of, good, reason, bad = MEDICINE[i % len(MEDICINE)]
        patient = patient_of(rng)
        words = {"patient": patient, "condition": condition, "condition_cap": condition[0].upper() + condition[1:],
                 "drug": drug, "drug_cap": drug.capitalize(), "good": good, "reason": reason,
                 "reason_cap": reason[0].upper() + reason[1:], "bad": bad}
        prompt = rng.choice(QUESTIONS).format(**words)
        prompt = prompt[0].upper() + prompt[1:]
        if prompt in seen:  # the same patient drawn twice: draw again
            continue
        seen.add(prompt)
        careful = f"{rng.choice(CAREFUL).format(**words)} {rng.choice(CAREFUL_CLOSERS)}".strip()
        flawed = rng.choice(FLAWED).format(**words)
        careful_model, flawed_model = rng.sample(MODELS, 2)
        responses = [{"model": careful_model, "text": careful}, {"model": flawed_model, "text": flawed}]
        rng.shuffle(responses)
        yield {
            "external_id": f"med-{i:04d}",
            "prompt": [
                {"role": "system", "content": "You are a clinical decision-support assistant for primary care."},
                {"role": "user", "content": prompt},
            ] if i % 3 == 0 else prompt,
            "responses": responses,
            "metadata": {"specialty": "primary care", "drug": drug, "careful_model": careful_model},
        }
        i += 1


# (language, goal, good code, flawed code, the flaw)
CODE = [
    ("Python", "return the n-th Fibonacci number",
     "def {name}(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     "def {name}(n):\n    return {name}(n - 1) + {name}(n - 2) if n > 1 else n", "exponential time for large n"),
    ("SQL", "find customers with no orders",
     "SELECT c.id FROM customers c\nWHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id);",
     "SELECT id FROM customers WHERE id NOT IN (SELECT customer_id FROM orders);", "NOT IN returns nothing if any customer_id is NULL"),
    ("JavaScript", "debounce a function",
     "function {name}(fn, ms) {{\n  let t;\n  return (...args) => {{\n    clearTimeout(t);\n    t = setTimeout(() => fn(...args), ms);\n  }};\n}}",
     "function {name}(fn, ms) {{\n  return (...args) => setTimeout(() => fn(...args), ms);\n}}", "never cancels earlier calls"),
    ("Python", "sum one column of a large CSV file",
     "import csv\n\ndef {name}(path, col):\n    with open(path, newline='') as f:\n        return sum(float(r[col]) for r in csv.DictReader(f))",
     "def {name}(path, col):\n    rows = open(path).read().split('\\n')\n    return sum(float(r.split(',')[col]) for r in rows)",
     "breaks on quoted commas and leaks the file handle"),
    ("Bash", "delete files older than 30 days in a directory",
     "find \"$DIR\" -type f -mtime +30 -delete", "rm -rf $DIR/$(ls -t $DIR | tail -n +30)", "unquoted path and the wrong selection"),
    ("Rust", "parse an integer typed by the user",
     "match input.trim().parse::<i64>() {{\n    Ok(n) => println!(\"{{n}}\"),\n    Err(e) => eprintln!(\"not a number: {{e}}\"),\n}}",
     "let n: i64 = input.parse().unwrap();", "panics on a trailing newline or bad input"),
    ("Python", "split a list into chunks of size k",
     "def {name}(items, k):\n    return [items[i:i + k] for i in range(0, len(items), k)]",
     "def {name}(items, k):\n    return [items[i:i + k] for i in range(0, len(items) - k, k)]", "drops the last chunk"),
    ("Go", "read a file and handle the error",
     "data, err := os.ReadFile(path)\nif err != nil {{\n    return fmt.Errorf(\"read %s: %w\", path, err)\n}}",
     "data, _ := os.ReadFile(path)", "ignores the error and works on empty data"),
    ("TypeScript", "check that a user id from a URL is a positive integer",
     "function {name}(raw: string): number | null {{\n  return /^[1-9][0-9]*$/.test(raw) ? Number(raw) : null;\n}}",
     "function {name}(raw: string): number {{\n  return parseInt(raw);\n}}", "parseInt accepts '12abc' and returns NaN silently"),
    ("Python", "hash a password for storage",
     "from argon2 import PasswordHasher\n\n_hasher = PasswordHasher()\n\ndef {name}(password: str) -> str:\n    return _hasher.hash(password)",
     "import hashlib\n\ndef {name}(password: str) -> str:\n    return hashlib.md5(password.encode()).hexdigest()", "unsalted MD5 is cracked in seconds"),
]
CONTEXTS = ["in our billing service", "for a command-line tool", "in a data pipeline", "for an internal dashboard",
            "in a Django app", "for a weekend project", "in a payments backend", "for a teaching example",
            "in a log-processing job", "for a mobile app's API"]
NAMES = ["run", "handle", "compute", "process", "do_it", "helper", "solve", "main_step"]
GOOD_INTROS = ["This handles the edge cases:", "A version that is safe on bad input:", "I'd write it like this:",
               "Here's a correct approach:"]
GOOD_NOTES = ["It avoids the usual trap: {flaw}.", "Watch out for the naive version, which {flaw}.",
              "Tested on empty and large inputs.", ""]
BAD_INTROS = ["Simple solution:", "Quick one-liner:", "Easy:", "Here you go:"]
BAD_NOTES = ["This works for typical inputs.", "Should be fine.", "Short and readable.", ""]


def code_tasks(count: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    seen: set[str] = set()
    i = 0
    while i < count:
        language, goal, good_code, bad_code, flaw = CODE[i % len(CODE)]
        context = rng.choice(CONTEXTS)
        name = rng.choice(NAMES)
        prompt = f"In {language}, {goal} ({context}). Call it `{name}` where a name is needed."
        if prompt in seen:
            continue
        seen.add(prompt)
        lang = language.lower()
        good = (f"{rng.choice(GOOD_INTROS)}\n\n```{lang}\n{good_code.format(name=name)}\n```\n\n"
                f"{rng.choice(GOOD_NOTES).format(flaw=flaw)}").strip()
        bad = f"{rng.choice(BAD_INTROS)}\n\n```{lang}\n{bad_code.format(name=name)}\n```\n\n{rng.choice(BAD_NOTES)}".strip()
        careful_model, flawed_model = rng.sample(MODELS, 2)
        responses = [{"model": careful_model, "text": good}, {"model": flawed_model, "text": bad}]
        rng.shuffle(responses)
        yield {
            "external_id": f"code-{i:04d}",
            "prompt": prompt,
            "responses": responses,
            "metadata": {"language": language, "known_flaw": flaw, "careful_model": careful_model},
        }
        i += 1


def with_gold(rows: list[dict[str, Any]], every: int) -> list[dict[str, Any]]:
    """Mark every ``every``-th task as gold: its known answer is the careful response."""
    for index, row in enumerate(rows):
        if index % every == every - 1:
            best = next(i for i, r in enumerate(row["responses"]) if r["model"] == row["metadata"]["careful_model"])
            row["gold"] = {"ranking": ["A", "B"] if best == 0 else ["B", "A"]}
    return rows
