"""Write tinyllm/data/corpus_es.txt: the built-in Spanish corpus of tinyllm.

Short sentences in the blog's world (sky, sea, colours, weather, cold), one per
line. Part is written out by hand, part is built from a few templates whose
words agree in gender and number; the result is shuffled with a fixed seed and
de-duplicated, so running this again gives the same file.

    python scripts/make_corpus_es.py
"""

import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "tinyllm" / "data" / "corpus_es.txt"

# (subject, verb "es"/"son", adjectives it takes, weight of each adjective)
THINGS = [
    ("el cielo", "es", {"azul": 12, "claro": 2}),
    ("el mar", "es", {"azul": 5, "profundo": 3, "salado": 3, "grande": 2}),
    ("el hielo", "es", {"frío": 8, "duro": 3, "blanco": 2, "transparente": 1}),
    ("la nieve", "es", {"blanca": 6, "fría": 5, "suave": 1}),
    ("el sol", "es", {"amarillo": 4, "caliente": 3, "grande": 1}),
    ("la luna", "es", {"blanca": 3, "redonda": 3}),
    ("las nubes", "son", {"blancas": 4, "grises": 4}),
    ("la hierba", "es", {"verde": 5}),
    ("el agua", "es", {"fría": 3, "clara": 2, "azul": 1}),
    ("la noche", "es", {"oscura": 4, "fría": 3, "larga": 1}),
    ("el invierno", "es", {"frío": 5, "largo": 2}),
    ("el verano", "es", {"caluroso": 3, "largo": 1}),
    ("el viento", "es", {"frío": 3, "fuerte": 3}),
    ("la lluvia", "es", {"fría": 2, "suave": 1}),
    ("el fuego", "es", {"rojo": 3, "caliente": 3}),
    ("la arena", "es", {"amarilla": 2, "caliente": 2}),
    ("el bosque", "es", {"verde": 3, "oscuro": 2}),
    ("las hojas", "son", {"verdes": 3, "amarillas": 2}),
    ("el río", "es", {"frío": 2, "azul": 1, "largo": 1}),
    ("la montaña", "es", {"alta": 3, "blanca": 1}),
]

OPENERS = ["", "", "", "hoy ", "en mi pueblo ", "desde aquí ", "esta mañana "]

# (weather phrase, sentences that follow well)
WEATHER = [
    "hace frío",
    "hace mucho frío",
    "hace calor",
    "hace sol",
    "hace viento",
    "llueve",
    "nieva",
    "hay nubes",
    "hay niebla",
]
WHEN = [
    "en invierno",
    "en verano",
    "en otoño",
    "en primavera",
    "por la noche",
    "por la mañana",
    "hoy",
    "en la montaña",
    "junto al mar",
]
WHEN_WEATHER = {
    "en invierno": ["hace frío", "hace mucho frío", "nieva", "llueve", "hace viento"],
    "en verano": ["hace calor", "hace sol"],
    "en otoño": ["llueve", "hace viento", "hay niebla", "hay nubes"],
    "en primavera": ["hace sol", "llueve"],
    "por la noche": ["hace frío", "hay niebla"],
    "por la mañana": ["hace frío", "hay niebla", "hace sol"],
    "hoy": WEATHER,
    "en la montaña": ["hace frío", "nieva", "hace viento"],
    "junto al mar": ["hace viento", "hace sol", "hay niebla"],
}

HAND_WRITTEN = """
el cielo es azul.
el hielo es frío.
el cielo es azul y el mar también.
el mar es azul como el cielo.
¿de qué color es el cielo? el cielo es azul.
¿de qué color es el mar? el mar es azul.
¿de qué color es la nieve? la nieve es blanca.
¿de qué color es la hierba? la hierba es verde.
¿cómo es el hielo? el hielo es frío.
¿cómo es el invierno? el invierno es frío.
cuando llueve, el cielo está gris.
cuando hay nubes, el cielo está gris.
de noche el cielo está oscuro.
de día el cielo es azul.
por la noche el cielo está negro y lleno de estrellas.
al atardecer el cielo se pone rojo.
al amanecer el cielo se pone rosa.
el cielo está despejado.
hoy el cielo está nublado.
me gusta el cielo azul.
me gusta el mar azul.
no me gusta el frío.
me gusta la nieve blanca.
el hielo es agua fría.
el hielo está frío porque es agua helada.
si hace mucho frío, el agua se convierte en hielo.
el hielo se derrite con el sol.
la nieve se derrite en primavera.
en invierno el lago está helado.
el lago helado es blanco.
el frío llega en invierno.
el calor llega en verano.
tengo frío.
tengo frío en las manos.
hace frío, ponte el abrigo.
hace sol, vamos a la playa.
hace calor y el mar está tranquilo.
el mar está tranquilo.
hoy el mar está agitado.
las olas del mar son blancas.
el agua del mar es salada.
el agua del río es dulce.
la nieve cubre la montaña.
la montaña está blanca de nieve.
el viento del norte es frío.
el viento sopla fuerte.
las nubes tapan el sol.
las nubes grises traen lluvia.
después de la lluvia sale el arcoíris.
el arcoíris tiene muchos colores.
el rojo, el amarillo y el azul son colores.
el verde y el blanco también son colores.
el azul es el color del cielo.
el azul es el color del mar.
el blanco es el color de la nieve.
el verde es el color de la hierba.
el amarillo es el color del sol.
el rojo es el color del fuego.
el gris es el color de las nubes de lluvia.
el negro es el color de la noche.
mi color favorito es el azul.
el cielo es azul porque el aire dispersa la luz.
el sol calienta la tierra.
la luna brilla de noche.
las estrellas brillan en el cielo.
el sol brilla en el cielo.
el pájaro vuela por el cielo.
los pájaros cruzan el cielo azul.
el barco navega por el mar azul.
el pez nada en el mar.
el niño mira el cielo.
la niña mira el mar.
el cielo es muy grande.
el mar es muy profundo.
el hielo es muy frío.
la nieve es muy fría.
en la montaña la nieve es blanca y el cielo es azul.
en el polo hace mucho frío y todo es hielo.
en el desierto hace calor y la arena es amarilla.
en verano el cielo es azul y hace calor.
en invierno el cielo está gris y hace frío.
en otoño las hojas son amarillas.
en primavera la hierba es verde.
el invierno es frío y el verano es caluroso.
el hielo es frío y la nieve también.
el fuego es caliente y el hielo es frío.
el sol es caliente y la luna es fría.
el té está caliente.
el agua está fría.
la sopa está caliente.
el helado está frío.
""".strip().splitlines()


def templated(rng: random.Random) -> list[str]:
    lines = []
    for subject, verb, adjectives in THINGS:
        for adjective, weight in adjectives.items():
            for _ in range(weight):
                # "hoy el invierno es frío" reads oddly: no opener for times of year or day.
                timeless = subject in ("el invierno", "el verano", "la noche")
                opener = "" if timeless else rng.choice(OPENERS)
                lines.append(f"{opener}{subject} {verb} {adjective}.")
        # Two adjectives joined by "y" when the thing has two that fit together.
        names = list(adjectives)
        if len(names) >= 2:
            a, b = rng.sample(names, 2)
            lines.append(f"{subject} {verb} {a} y {b}.")
    for when, weathers in WHEN_WEATHER.items():
        for weather in weathers:
            lines.append(f"{when} {weather}.")
            if weather in ("hace frío", "hace mucho frío", "nieva"):
                lines.append(f"{when} {weather} y el lago está helado.")
            if weather in ("hace sol", "hace calor"):
                lines.append(f"{when} {weather} y el cielo es azul.")
            if weather in ("llueve", "hay nubes"):
                lines.append(f"{when} {weather} y el cielo está gris.")
    return lines


def main() -> None:
    rng = random.Random(6)
    lines = HAND_WRITTEN + templated(rng)
    # Repeated simple facts are the point (the model learns from counts), but the
    # file keeps at most three copies of a sentence.
    seen: dict[str, int] = {}
    kept = []
    for line in lines:
        seen[line] = seen.get(line, 0) + 1
        if seen[line] <= 3:
            kept.append(line)
    rng.shuffle(kept)
    header = (
        "# tinyllm's built-in corpus: short Spanish sentences about the sky, the sea,\n"
        "# colours, the weather and the cold, one per line (written for this project;\n"
        "# regenerate with scripts/make_corpus_es.py). Lines starting with # are comments.\n"
    )
    OUT.write_text(header + "\n".join(kept) + "\n", encoding="utf-8")
    print(f"{len(kept)} sentences -> {OUT}")


if __name__ == "__main__":
    main()
