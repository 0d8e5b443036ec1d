"""verifiers: answer extraction and math equivalence that is right, fast and never hangs.

    from verifiers import extract_answer, verify, grade, grade_many, VerifyConfig
    extract_answer("... so the answer is $\\boxed{\\frac{1}{2}}$.")  # '\\frac{1}{2}'
    verify("\\frac{1}{2}", "0.5")                                     # True
    grade("18", "She makes 9 * 2 = $18 a day.\\n#### 18").status      # 'correct'

Plain numbers, letters and text are compared in-process (pure Python); everything
else goes to sandboxed worker processes with a deadline (see verifiers/pool.py). Model
text is never evaluated: see verifiers/parser.py. Rules are documented in docs/verifiers.md.
Importing this package does not import sympy or start processes.
"""

from .config import VerifyConfig
from .errors import ParseError, TooLargeError, VerifierError, VerifierTimeout
from .extract import extract_answer
from .grader import STATUSES, Verdict, clear_cache, grade, grade_many, judge, verify
from .pool import shutdown_pool

__all__ = [
    "extract_answer",
    "verify",
    "grade",
    "grade_many",
    "judge",
    "Verdict",
    "VerifyConfig",
    "STATUSES",
    "clear_cache",
    "shutdown_pool",
    "VerifierError",
    "ParseError",
    "TooLargeError",
    "VerifierTimeout",
]
