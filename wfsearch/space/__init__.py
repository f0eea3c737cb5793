"""The declarative design-space spec: schema, strict YAML loading, sampling into `ArchConfig`.

    spec = load_spec("spaces/predictors.yaml", overrides=["study.trials=8"])
    sample = sample_arch(spec, optuna_trial)   # Sample(params, arch | None, infeasible | None)
"""
from .checks import SpecIssue
from .loader import apply_overrides, key_path, load_spec, parse_yaml, read_yaml_text, spec_from_dict, validate_model
from .sampling import Sample, arch_from_params, design_costs, load_designs, random_samples, sample_arch
from .spec import (METRICS, SAMPLERS, Constraint, DatasetSpec, Knob, Objective, ProxySpec, Reference,
                   ResolvedReference, ResourcesSpec, SchedulerSpec, SpaceSize, SpaceSpec, StudySpec, ThroughputSpec,
                   encode_choice, parse_constraint)


def spec_json_schema() -> dict:
    """JSON Schema of a spec file (for editor completion), including the ``extends`` key."""
    schema = SpaceSpec.model_json_schema(by_alias=True)
    schema["properties"] = {"extends": {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "spec file(s) this one builds on, relative to this file; mappings merge deeply, "
                       "lists replace, a null in base or space removes an inherited entry"},
        **schema["properties"]}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


__all__ = ["load_spec", "spec_from_dict", "apply_overrides", "parse_yaml", "read_yaml_text", "key_path",
           "spec_json_schema", "validate_model", "SpaceSpec", "StudySpec", "ResourcesSpec", "ProxySpec", "DatasetSpec",
           "ThroughputSpec", "SchedulerSpec", "Objective", "Constraint", "parse_constraint", "Knob", "Reference",
           "ResolvedReference", "SpaceSize", "METRICS", "SAMPLERS", "SpecIssue", "Sample", "sample_arch",
           "design_costs", "arch_from_params", "random_samples", "load_designs", "encode_choice"]
