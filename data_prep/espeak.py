"""In-process espeak-ng speech synthesis through ctypes (library from ``espeakng-loader``).

Why every engine loads a private copy of the library
----------------------------------------------------
libespeak-ng keeps synthesis state in C statics that neither ``espeak_Terminate`` nor
``espeak_Initialize`` reset (the pitch-flutter index, the automatic gain control, the echo
buffer, the waveform phase). Two identical requests in one process therefore give audio that
differs by a few samples, depending on everything synthesized before. ``dlopen`` shares one
copy of a library per file, so each :class:`EspeakEngine` copies the shared object to a fresh
temporary file and loads that: its statics start from their initial values. Together with
``espeak_ng_SetRandSeed`` before every utterance (breathy voices draw noise from espeak's
generator, which ``espeak_Initialize`` seeds from the clock), the same requests on a fresh
engine give identical samples, whatever the process did before.

Known traps handled here
------------------------
- Variant names are case sensitive (``en-us+Alicia``). An unknown variant makes
  ``espeak_SetVoiceByName`` succeed anyway and synthesize the base voice, so the return code
  proves nothing: :func:`variant_changes_audio` checks the audio.
- ``en-gb`` is not a voice name (``en``, ``en-gb-x-rp``, ``en-gb-scotland`` are); an unknown
  base name returns an error code, which :meth:`EspeakEngine.synthesize` turns into a ValueError.
- Flag ``0x1000`` of ``espeak_Synth`` is ``espeakENDPAUSE``, not a character encoding.
"""

import ctypes
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 0x1
_ENDPAUSE = 0x1000
# espeak_PARAMETER enum values (speak_lib.h)
_RATE, _VOLUME, _PITCH, _RANGE, _PUNCTUATION, _CAPITALS, _WORDGAP = 1, 2, 3, 4, 5, 6, 7

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class VoiceSpec:
    """One synthetic voice: espeak language voice, variant and prosody parameters.

    Attributes
    ----------
    language : str
        espeak-ng language voice (accent), e.g. ``"en-us"``, ``"en-gb-x-rp"``.
    variant : str
        Variant file name in ``espeak-ng-data/voices/!v`` (case sensitive), e.g. ``"f2"``.
    pitch : int
        Base pitch, 0-99 (50 = the variant's own pitch).
    pitch_range : int
        Intonation range, 0-99 (50 = normal).
    rate : int
        Speaking rate in words per minute (80-450).
    """

    language: str
    variant: str
    pitch: int = 50
    pitch_range: int = 50
    rate: int = 175

    def __post_init__(self):
        for field, low, high in (("pitch", 0, 99), ("pitch_range", 0, 99), ("rate", 80, 450)):
            value = getattr(self, field)
            if not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"VoiceSpec.{field} must be an int in [{low}, {high}], got {value!r}")
        if not self.language or "+" in self.language:
            raise ValueError(f"VoiceSpec.language must be a language voice name without '+', got {self.language!r}")
        if "+" in self.variant:
            raise ValueError(f"VoiceSpec.variant must not contain '+', got {self.variant!r}")

    @property
    def name(self):
        """The name given to ``espeak_SetVoiceByName`` (``language+variant``)."""
        return f"{self.language}+{self.variant}" if self.variant else self.language


def _library_paths():
    import espeakng_loader  # imported lazily: only synthesis needs it

    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


class EspeakEngine:
    """A freshly initialised, private instance of libespeak-ng (synchronous, in memory).

    Use as a context manager; audio is returned as int16 samples at :attr:`sample_rate`.
    """

    def __init__(self):
        library_path, self.data_path = _library_paths()
        tmp_dir = tempfile.mkdtemp(prefix="speechfl-espeak-")
        private_copy = os.path.join(tmp_dir, "libespeak-ng-private.so")
        try:
            shutil.copyfile(library_path, private_copy)
            self._lib = ctypes.CDLL(private_copy)
        except OSError as error:
            raise RuntimeError(f"cannot load a private copy of libespeak-ng from {tmp_dir} ({error}); if that "
                               "folder is mounted noexec, point TMPDIR to one that is not") from error
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)  # the mapping outlives the file
        lib = self._lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        self._chunks = []
        self._callback = _CALLBACK(self._collect)  # kept on self: C holds only a raw pointer
        self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (returned {self.sample_rate}) with data {self.data_path}")
        lib.espeak_SetSynthCallback(self._callback)
        self.version = lib.espeak_Info(None).decode()
        self._open = True

    def _collect(self, wav, n_samples, _events):
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        return 0

    def synthesize(self, text, voice, seed=0):
        """Synthesize ``text`` with ``voice``; every parameter is set explicitly for each call.

        Parameters
        ----------
        text : str
            Text to speak (punctuation shapes intonation).
        voice : VoiceSpec
        seed : int
            Seed of espeak's noise generator for this utterance.

        Returns
        -------
        numpy.ndarray
            int16 samples at :attr:`sample_rate`.
        """
        if not self._open:
            raise RuntimeError("EspeakEngine is closed")
        if not isinstance(voice, VoiceSpec):
            raise TypeError(f"voice must be a VoiceSpec, got {type(voice).__name__}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"text must be a non-empty string, got {text!r}")
        lib = self._lib
        status = lib.espeak_SetVoiceByName(voice.name.encode())
        if status != 0:
            raise ValueError(f"espeak-ng has no voice named {voice.language!r} (espeak_SetVoiceByName "
                             f"returned {status} for {voice.name!r})")
        for parameter, value in ((_RATE, voice.rate), (_VOLUME, 100), (_PITCH, voice.pitch),
                                 (_RANGE, voice.pitch_range), (_PUNCTUATION, 0), (_CAPITALS, 0),
                                 (_WORDGAP, 0)):
            lib.espeak_SetParameter(parameter, value, 0)
        lib.espeak_ng_SetRandSeed(seed)
        self._chunks = []
        encoded = text.encode("utf-8")
        status = lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _ENDPAUSE,
                                  None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status} for text {text!r}")
        lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, dtype=np.int16)
        self._chunks = []
        return audio

    def close(self):
        """Terminate espeak and unload the private library copy."""
        if self._open:
            self._open = False
            self._lib.espeak_Terminate()
            handle = self._lib._handle
            self._lib = None
            import _ctypes

            _ctypes.dlclose(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def variant_changes_audio(language, variant, text="one two three four five"):
    """True when ``language+variant`` sounds different from ``language`` alone.

    espeak-ng silently falls back to the base voice for an unknown (or misspelled) variant, so
    existence is proved by the audio, each synthesis on a fresh engine so that only the voice
    differs.
    """
    with EspeakEngine() as engine:
        base = engine.synthesize(text, VoiceSpec(language, ""))
    with EspeakEngine() as engine:
        varied = engine.synthesize(text, VoiceSpec(language, variant))
    return not np.array_equal(base, varied)
