"""mmcore's teaching lab kit: seeded exercises (:mod:`.exercises`), an autograder
(:mod:`.grader`), lab notebooks (:mod:`.notebooks`; lab 1 also in a terminal:
:mod:`.lab1_cow_and_rmap`). See README.md here and
docs/teaching.md."""
