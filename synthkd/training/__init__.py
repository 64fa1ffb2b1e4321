"""training room: LoRA students (classifier, generator), evaluation, hard-negative mining.

See ../shared/DESIGN.md. Public names are re-exported here; every other module is private.
"""

from synthkd.training._examples import LabelledExamples, labelled_examples, texts_of
from synthkd.training.config import STUDENT_KINDS, StudentConfig
from synthkd.training.evaluation import (
    Classifier,
    ConfusedPair,
    EvaluationReport,
    HardNegative,
    HardNegatives,
    TeacherClassifier,
    evaluate,
    hard_negatives,
)
from synthkd.training.export import EXPORT_FORMATS
from synthkd.training.generative import GenerationReport, GenerativeStudent, evaluate_generation
from synthkd.training.students import (
    TrainResult,
    export_student,
    load_student,
    merge_student,
    train_student,
)

__all__ = [
    "EXPORT_FORMATS",
    "STUDENT_KINDS",
    "Classifier",
    "ConfusedPair",
    "EvaluationReport",
    "GenerationReport",
    "GenerativeStudent",
    "HardNegative",
    "HardNegatives",
    "LabelledExamples",
    "StudentConfig",
    "TeacherClassifier",
    "TrainResult",
    "evaluate",
    "evaluate_generation",
    "export_student",
    "hard_negatives",
    "labelled_examples",
    "load_student",
    "merge_student",
    "texts_of",
    "train_student",
]
