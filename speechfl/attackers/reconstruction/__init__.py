"""Reconstruction attacks of an honest-but-curious server on (compressed) client updates.

* :mod:`.labels`: the character set of a client's transcripts from the CTC head bias;
* :mod:`.matching`, :mod:`.inversion`: features by gradient matching (Geiping et al. 2020);
* :mod:`.local_model`: local-model recovery and the footprint attack (Tomashenko et al. 2022);
* :func:`run_reconstruction`: all of them per compressor view, one typed report;
* :mod:`.recorded`: labels and footprints on a finished run's recorded rounds (``speechfl evaluate
  --threats reconstruction``).
"""

from speechfl.attackers.reconstruction.inputs import AttackedUpdate, ReconstructionConfig, ReconstructionInput
from speechfl.attackers.reconstruction.labels import recover_char_set, score_sets, true_char_set
from speechfl.attackers.reconstruction.matching import MatchConfig, match_input
from speechfl.attackers.reconstruction.recorded import reconstruction_from_recorded
from speechfl.attackers.reconstruction.reports import ReconstructionReport
from speechfl.attackers.reconstruction.run import run_reconstruction

__all__ = [
    "AttackedUpdate",
    "MatchConfig",
    "ReconstructionConfig",
    "ReconstructionInput",
    "ReconstructionReport",
    "match_input",
    "reconstruction_from_recorded",
    "recover_char_set",
    "run_reconstruction",
    "score_sets",
    "true_char_set",
]
