"""mmcore's teaching lab kit: seeded exercises (:mod:`.exercises`), an autograder
(:mod:`.grader`) and a worked lab (:mod:`.lab1_cow_and_rmap`). See README.md here and
docs/teaching.md."""
