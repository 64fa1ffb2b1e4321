"""training room: LoRA students (classifier, generator), evaluation, hard-negative mining.

See docs/architecture.md. Public names are re-exported here; every other module is private.
"""

from synthkd.training._examples import LabelledExamples, labelled_examples, texts_of
from synthkd.training.config import STUDENT_KINDS, StudentConfig

# Everything below is imported on first use (PEP 562): serving an ONNX or static copy
# (`load_serving_student`) must not pay for importing torch, transformers or sklearn.
_LAZY = {
    "synthkd.training.evaluation": (
        "Classifier",
        "ConfusedPair",
        "EvaluationReport",
        "HardNegative",
        "HardNegatives",
        "TeacherClassifier",
        "evaluate",
        "evaluate_teacher",
        "hard_negatives",
    ),
    "synthkd.training.export": ("EXPORT_FORMATS",),
    "synthkd.training.frozen": ("FrozenHeadStudent",),
    "synthkd.training.contrastive": ("ContrastiveConfig",),
    "synthkd.training.selection": ("Selection", "SelectionConfig", "fit_best", "select_student"),
    "synthkd.training.choices": ("accept_round", "choose_cut"),
    "synthkd.training.generative": (
        "GenerationReport",
        "GenerativeStudent",
        "evaluate_generation",
        "smollm2_base_dir",
    ),
    "synthkd.training.serving": ("SERVING_FORMATS", "load_serving_student", "serving_copies"),
    "synthkd.training.static": ("StaticStudent", "export_static"),
    "synthkd.training.triples_eval": (
        "KG_NORMALISATION",
        "evaluate_kg",
        "evaluate_tails",
        "kg_scores",
        "parse_triples",
        "tail_scores",
    ),
    "synthkd.training.students": (
        "TrainResult",
        "export_student",
        "load_student",
        "merge_student",
        "train_student",
    ),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'synthkd.training' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "EXPORT_FORMATS",
    "STUDENT_KINDS",
    "Classifier",
    "ConfusedPair",
    "ContrastiveConfig",
    "EvaluationReport",
    "FrozenHeadStudent",
    "KG_NORMALISATION",
    "GenerationReport",
    "GenerativeStudent",
    "HardNegative",
    "HardNegatives",
    "LabelledExamples",
    "SERVING_FORMATS",
    "Selection",
    "SelectionConfig",
    "StaticStudent",
    "StudentConfig",
    "TeacherClassifier",
    "TrainResult",
    "accept_round",
    "choose_cut",
    "evaluate",
    "evaluate_generation",
    "evaluate_kg",
    "evaluate_tails",
    "evaluate_teacher",
    "export_static",
    "export_student",
    "fit_best",
    "hard_negatives",
    "kg_scores",
    "labelled_examples",
    "load_serving_student",
    "load_student",
    "merge_student",
    "parse_triples",
    "select_student",
    "serving_copies",
    "smollm2_base_dir",
    "tail_scores",
    "texts_of",
    "train_student",
]
