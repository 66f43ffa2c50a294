"""Dead-letter CSV: columns, excerpt size, lazy creation."""

import csv

from tasks.deliver.dead_letter import DEAD_LETTER_COLUMNS, DeadLetterWriter, response_excerpt


def test_excerpt_is_the_first_500_bytes_as_text():
    assert response_excerpt(b"ok") == "ok"
    assert response_excerpt("é".encode() * 400) == "é" * 250  # 800 bytes -> 500
    assert response_excerpt(("a" + "é" * 300).encode()) == "a" + "é" * 249 + "\ufffd"  # cut inside a character
    assert response_excerpt(b"\xff\xfe bad") == "\ufffd\ufffd bad"


def test_file_is_created_on_the_first_dead_row_with_original_columns_first(tmp_path):
    path = tmp_path / "out" / "dead.csv"
    writer = DeadLetterWriter(path, ["Work Email", "Notes"])
    assert not path.exists()
    writer.write(4, {"Work Email": "a@x.com", "Notes": 'multi\nline "quoted"'}, status=400,
                 reason="HTTP 400 Bad Request (not retried)", response='{"error": "bad"}', attempts=1)
    writer.write(9, {"Work Email": "b@x.com"}, status="not-sent", reason="too big")
    writer.close()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["Work Email", "Notes", *DEAD_LETTER_COLUMNS]
    assert rows[1] == ["a@x.com", 'multi\nline "quoted"', "4", "400", "HTTP 400 Bad Request (not retried)",
                       '{"error": "bad"}', "1"]
    assert rows[2] == ["b@x.com", "", "9", "not-sent", "too big", "", "0"]
    assert writer.count == 2
