"""Les pages de revue : routes, contrôle d'accès, étape de confirmation des décisions.

Formulaires HTML simples (aucun script) : chaque POST porte le jeton CSRF de la session ;
chaque décision passe par une page de confirmation avant d'appeler le service partagé
(rapprochement.decisions), puis revient au paiement (POST → redirection → GET).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import structlog
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from rapprochement import decisions
from rapprochement.decisions import DecisionRefusee
from regie.application import Application
from regie.montants import MontantInvalide
from regie.pages import auth, presentation, requetes
from regie.pages.auth import Agent

log = structlog.get_logger()

COOKIE_SESSION = "regie_session"
COOKIE_CSRF_CONNEXION = "regie_csrf_connexion"
MOTIF_EXIGE = frozenset({"rembourser", "annuler_paiement", "annuler_affectation", "appliquer_credit"})
DECISIONS_PAIEMENT = ("affecter", "garder_en_credit", "rembourser", "annuler_paiement", "annuler_affectation")
LIGNES_REPARTITION = 4

modeles = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
modeles.env.filters.update(euros=presentation.euros, saisie=presentation.euros_saisie,
                           dateheure=presentation.dateheure, jour=presentation.jour, code=presentation.code,
                           canal=presentation.canal, statut=presentation.statut)
modeles.env.globals.update(CODES=presentation.CODES, CANAUX=presentation.CANAUX, DECISIONS=presentation.DECISIONS,
                           ROLES=presentation.ROLES)

routeur = APIRouter(include_in_schema=False)

EN_TETES = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class NonConnecte(Exception):
    """Pas de session valide : retour à la page de connexion."""

    def __init__(self, suite: str) -> None:
        self.suite = suite


class Interdit(Exception):
    """Rôle insuffisant ou jeton CSRF absent : 403 avec une page qui dit pourquoi."""

    def __init__(self, message: str) -> None:
        self.message = message


# --- Dépendances ---------------------------------------------------------------------------------

def application(request: Request) -> Application:
    app: Application = request.app.state.application_pages
    return app


ApplicationDep = Annotated[Application, Depends(application)]


def agent_connecte(request: Request, app: ApplicationDep) -> Agent:
    agent = auth.agent_de_la_session(app, request.cookies.get(COOKIE_SESSION))
    if agent is None:
        suite = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NonConnecte(suite if request.method == "GET" else "/")
    request.state.agent = agent
    return agent


AgentDep = Annotated[Agent, Depends(agent_connecte)]


async def formulaire(request: Request) -> dict[str, str]:
    donnees = await request.form()
    return {k: v for k, v in donnees.items() if isinstance(v, str)}


FormulaireDep = Annotated[dict[str, str], Depends(formulaire)]


def verifier_csrf(agent: Agent, form: Mapping[str, str]) -> None:
    if not auth.jetons_egaux(form.get("csrf"), agent.csrf):
        log.warning("csrf_refuse", identifiant=agent.identifiant)
        raise Interdit("Formulaire refusé : jeton de sécurité absent ou périmé. Rechargez la page et recommencez.")


def page(request: Request, modele: str, contexte: dict[str, Any], statut: int = 200,
         agent: Agent | None = None) -> HTMLResponse:
    reponse = modeles.TemplateResponse(request, modele, {"agent": agent, **contexte}, status_code=statut)
    reponse.headers.update(EN_TETES)
    return reponse


def rediriger(url: str) -> RedirectResponse:
    reponse = RedirectResponse(url, status_code=303)
    reponse.headers.update(EN_TETES)
    return reponse


def _suite_sure(suite: str | None) -> str:
    """N'accepte qu'un chemin de ce site (pas de redirection ouverte vers ailleurs)."""
    if not suite or not suite.startswith("/") or suite.startswith("//") or "\\" in suite:
        return "/"
    return suite


# --- Connexion ---------------------------------------------------------------------------------

@routeur.get("/connexion", response_class=HTMLResponse)
def connexion(request: Request, suite: str = "/", message: str | None = None) -> Response:
    import secrets

    jeton = request.cookies.get(COOKIE_CSRF_CONNEXION) or secrets.token_urlsafe(32)
    textes = {"expiree": "Votre session a expiré ou vous n'êtes pas connecté : connectez-vous.",
              "deconnecte": "Vous êtes déconnecté."}
    reponse = page(request, "connexion.html", {"csrf": jeton, "suite": _suite_sure(suite),
                                               "info": textes.get(message or "")})
    reponse.set_cookie(COOKIE_CSRF_CONNEXION, jeton, httponly=True, samesite="strict",
                       secure=request.url.scheme == "https", path="/connexion")
    return reponse


@routeur.post("/connexion", response_class=HTMLResponse)
def se_connecter(request: Request, app: ApplicationDep, form: FormulaireDep) -> Response:
    jeton_cookie = request.cookies.get(COOKIE_CSRF_CONNEXION)
    suite = _suite_sure(form.get("suite"))
    if not auth.jetons_egaux(form.get("csrf"), jeton_cookie):
        return page(request, "connexion.html", {"csrf": jeton_cookie or "", "suite": suite,
                                                "erreur": "Formulaire expiré : rechargez la page."}, 403)
    resultat = auth.se_connecter(app, form.get("identifiant", ""), form.get("mot_de_passe", ""))
    if resultat.jeton is None:
        return page(request, "connexion.html", {"csrf": jeton_cookie, "suite": suite,
                                                "identifiant": form.get("identifiant", ""),
                                                "erreur": resultat.message}, 401)
    reponse = rediriger(suite)
    reponse.set_cookie(COOKIE_SESSION, resultat.jeton, httponly=True, samesite="lax",
                       secure=request.url.scheme == "https", path="/",
                       max_age=int(auth.DUREE_MAX.total_seconds()))
    reponse.delete_cookie(COOKIE_CSRF_CONNEXION, path="/connexion")
    return reponse


@routeur.post("/deconnexion")
def se_deconnecter(request: Request, app: ApplicationDep, agent: AgentDep, form: FormulaireDep) -> Response:
    verifier_csrf(agent, form)
    auth.se_deconnecter(app, request.cookies.get(COOKIE_SESSION))
    reponse = rediriger("/connexion?message=deconnecte")
    reponse.delete_cookie(COOKIE_SESSION, path="/")
    return reponse


# --- Lecture -------------------------------------------------------------------------------------

@routeur.get("/", response_class=HTMLResponse)
def tableau_de_bord(request: Request, app: ApplicationDep, agent: AgentDep) -> Response:
    t = requetes.tableau_de_bord(app)
    return page(request, "tableau.html", {"t": t, "tranches": requetes.TRANCHES_AGE, "actif": "tableau"}, agent=agent)


def _euros_ou_none(texte: str | None, champ: str, erreurs: list[str]) -> int | None:
    if not texte or not texte.strip():
        return None
    try:
        return presentation.lire_euros(texte)
    except MontantInvalide:
        erreurs.append(f"{champ} : « {texte} » n'est pas un montant en euros (ex. 42,00)")
        return None


@routeur.get("/file", response_class=HTMLResponse)
def file_de_revue(request: Request, app: ApplicationDep, agent: AgentDep, code: str = "", canal: str = "",
                  regie: str = "", montant_min: str = "", montant_max: str = "", age_min: str = "",
                  statut: str = "ouvertes", apres: str = "", avant: str = "") -> Response:
    erreurs: list[str] = []
    age = int(age_min) if age_min.isdigit() else None
    filtres = requetes.FiltresFile(code or None, canal or None, regie or None,
                                   _euros_ou_none(montant_min, "Montant minimum", erreurs),
                                   _euros_ou_none(montant_max, "Montant maximum", erreurs), age,
                                   statut if statut in requetes.STATUTS_FILE else "ouvertes")
    resultat = requetes.file_revue(app, filtres, apres=apres or None, avant=avant or None)
    criteres = {"code": code, "canal": canal, "regie": regie, "montant_min": montant_min,
                "montant_max": montant_max, "age_min": age_min, "statut": filtres.statut}
    garde = {k: v for k, v in criteres.items() if v}
    return page(request, "file.html", {
        "page_file": resultat, "criteres": criteres, "erreurs": erreurs, "actif": "file",
        "regies": sorted(app.config.regies),
        "lien_suivant": f"/file?{urlencode({**garde, 'apres': resultat.suivant})}" if resultat.suivant else None,
        "lien_precedent": f"/file?{urlencode({**garde, 'avant': resultat.precedent})}" if resultat.precedent else None,
        "lien_debut": f"/file?{urlencode(garde)}" if (apres or avant) else None,
    }, agent=agent)


def _contexte_paiement(app: Application, paiement_id: int) -> dict[str, Any] | None:
    d = requetes.detail_paiement(app, paiement_id)
    if d is None:
        return None
    p = d["paiement"]
    d["disponible"] = p["montant"] - p["affecte"] - p["en_credit"] - p["rembourse"]
    # Lignes de répartition préremplies avec les suggestions (numéro seulement : l'agent décide des montants,
    # sauf s'il n'y a qu'une suggestion : alors ce qui reste à placer, borné par le reste de la facture).
    lignes: list[dict[str, str]] = []
    for s in d["suggestions"][:LIGNES_REPARTITION]:
        montant = ""
        if len(d["suggestions"]) == 1 and s.get("reste_actuel"):
            montant = presentation.euros_saisie(min(d["disponible"], int(s["reste_actuel"])))
        lignes.append({"facture": str(s.get("facture") or ""), "montant": montant})
    while len(lignes) < LIGNES_REPARTITION:
        lignes.append({"facture": "", "montant": ""})
    d["lignes_repartition"] = lignes
    return d


@routeur.get("/paiements/{paiement_id}", response_class=HTMLResponse)
def paiement(request: Request, app: ApplicationDep, agent: AgentDep, paiement_id: int, fait: str = "") -> Response:
    d = _contexte_paiement(app, paiement_id)
    if d is None:
        return page(request, "erreur.html", {"titre": "Paiement introuvable",
                                             "message": f"Aucun paiement n° {paiement_id}."}, 404, agent)
    return page(request, "paiement.html", {**d, "fait": presentation.DECISIONS.get(fait), "actif": "file"},
                agent=agent)


@routeur.get("/familles/{numero}", response_class=HTMLResponse)
def famille(request: Request, app: ApplicationDep, agent: AgentDep, numero: str, fait: str = "",
            montant: str = "") -> Response:
    compte = requetes.compte_famille(app, numero)
    if compte is None:
        return page(request, "erreur.html", {"titre": "Dossier introuvable",
                                             "message": f"Aucun dossier « {numero} »."}, 404, agent)
    message = None
    if fait == "appliquer_credit":
        message = f"Crédit appliqué : {presentation.euros(int(montant) if montant.isdigit() else 0)}."
    return page(request, "famille.html", {"c": compte, "fait": message, "actif": "familles"}, agent=agent)


@routeur.get("/recherche", response_class=HTMLResponse)
def recherche(request: Request, app: ApplicationDep, agent: AgentDep, q: str = "") -> Response:
    numero = requetes.chercher_dossier(app, q)
    if numero is None:
        return page(request, "erreur.html", {"titre": "Rien trouvé",
                                             "message": f"Aucun dossier, facture ou payeur « {q} »."}, 404, agent)
    return rediriger(f"/familles/{numero}")


@routeur.get("/fichiers", response_class=HTMLResponse)
def fichiers(request: Request, app: ApplicationDep, agent: AgentDep, statut: str = "", canal: str = "",
             p: int = 1) -> Response:
    donnees = requetes.fichiers(app, statut=statut or None, canal=canal or None, page=max(1, p))
    garde = {k: v for k, v in {"statut": statut, "canal": canal}.items() if v}
    return page(request, "fichiers.html", {"f": donnees, "statut": statut, "canal": canal, "garde": urlencode(garde),
                                           "actif": "fichiers"}, agent=agent)


@routeur.get("/titres", response_class=HTMLResponse)
def titres(request: Request, app: ApplicationDep, agent: AgentDep, statut: str = "", p: int = 1) -> Response:
    donnees = requetes.titres(app, statut=statut or None, page=max(1, p))
    return page(request, "titres.html", {"t": donnees, "statut": statut,
                                         "garde": urlencode({"statut": statut} if statut else {}),
                                         "actif": "titres"}, agent=agent)


@routeur.get("/audit", response_class=HTMLResponse)
def audit(request: Request, app: ApplicationDep, agent: AgentDep, qui: str = "", action: str = "",
          objet: str = "", objet_id: str = "", avant: int | None = None) -> Response:
    filtres = requetes.FiltresAudit(qui or None, action or None, objet or None, objet_id or None)
    donnees = requetes.journal_audit(app, filtres, avant=avant)
    garde = {k: v for k, v in {"qui": qui, "action": action, "objet": objet, "objet_id": objet_id}.items() if v}
    return page(request, "audit.html", {
        "j": donnees, "criteres": garde | {"qui": qui, "action": action, "objet": objet, "objet_id": objet_id},
        "lien_suivant": f"/audit?{urlencode({**garde, 'avant': donnees['suivant']})}" if donnees["suivant"] else None,
        "lien_debut": f"/audit?{urlencode(garde)}" if avant else None, "actif": "audit"}, agent=agent)


# --- Décisions -----------------------------------------------------------------------------------

@dataclass
class Demande:
    """Une décision lue du formulaire et vérifiée, prête à être confirmée puis appliquée."""

    decision: str
    motif: str
    version: int | None
    repartition: list[tuple[str, int]]
    montant: int | None
    facture: str | None
    erreurs: list[str]
    dossier: str | None = None


def lire_demande(decision: str, form: Mapping[str, str], disponible: int | None = None) -> Demande:
    erreurs: list[str] = []
    motif = form.get("motif", "").strip()
    version = int(form["version"]) if form.get("version", "").isdigit() else None
    repartition: list[tuple[str, int]] = []
    montant: int | None = None
    facture: str | None = None
    if decision == "affecter":
        vues: set[str] = set()
        for i in range(1, 21):
            numero = form.get(f"facture_{i}", "").strip()
            texte = form.get(f"montant_{i}", "").strip()
            if not numero and not texte:
                continue
            if not numero:
                erreurs.append(f"Ligne {i} : indiquez le numéro de la facture.")
                continue
            if numero in vues:
                erreurs.append(f"Ligne {i} : la facture {numero} figure deux fois.")
                continue
            vues.add(numero)
            try:
                centimes = presentation.lire_euros(texte)
            except MontantInvalide:
                erreurs.append(f"Ligne {i} : « {texte} » n'est pas un montant en euros (ex. 42,00).")
                continue
            if centimes <= 0:
                erreurs.append(f"Ligne {i} : le montant doit être positif.")
                continue
            repartition.append((numero, centimes))
        if not repartition and not erreurs:
            erreurs.append("Indiquez au moins une facture et son montant.")
        total = sum(m for _, m in repartition)
        if disponible is not None and repartition and total > disponible:
            erreurs.append(f"La répartition ({presentation.euros(total)}) dépasse ce qui reste à placer "
                           f"sur ce paiement ({presentation.euros(disponible)}).")
    elif decision == "rembourser":
        try:
            montant = presentation.lire_euros(form.get("montant", ""))
            if montant <= 0:
                erreurs.append("Le montant à rembourser doit être positif.")
        except MontantInvalide:
            erreurs.append(f"« {form.get('montant', '')} » n'est pas un montant en euros (ex. 12,50).")
    elif decision == "annuler_affectation":
        facture = form.get("facture", "").strip() or None
        if facture is None:
            erreurs.append("Choisissez l'affectation à annuler.")
    dossier = form.get("dossier", "").strip() or None
    if decision in MOTIF_EXIGE and not motif:
        erreurs.append("Le motif est obligatoire pour cette décision : l'argent revient en arrière.")
    return Demande(decision, motif, version, repartition, montant, facture, erreurs, dossier)


def _motif(d: Demande) -> str:
    return d.motif or "Décision prise depuis la page du paiement"


def appliquer(app: Application, paiement_id: int, d: Demande, qui: str) -> None:
    """Appelle le service partagé des décisions (une transaction, historique et audit compris)."""
    if d.decision == "affecter":
        decisions.affecter(app, paiement_id, d.repartition, qui=qui, motif=_motif(d), version=d.version)
    elif d.decision == "garder_en_credit":
        decisions.garder_en_credit(app, paiement_id, qui=qui, motif=_motif(d), version=d.version, dossier=d.dossier)
    elif d.decision == "rembourser":
        assert d.montant is not None
        decisions.rembourser(app, paiement_id, d.montant, qui=qui, motif=d.motif, version=d.version)
    elif d.decision == "annuler_paiement":
        decisions.annuler_paiement(app, paiement_id, qui=qui, motif=d.motif, version=d.version)
    elif d.decision == "annuler_affectation":
        assert d.facture is not None
        decisions.annuler_affectation(app, paiement_id, d.facture, qui=qui, motif=d.motif, version=d.version)
    else:  # pragma: no cover - filtré par la route
        raise ValueError(d.decision)


def _refus(exc: DecisionRefusee) -> tuple[str, int]:
    """Le message du service ; 409 quand le paiement a changé depuis l'affichage de la page, ou qu'un
    rapprochement en cours empêche de décider maintenant."""
    return exc.message, 409 if exc.code in ("PAIEMENT_MODIFIE", "RAPPROCHEMENT_EN_COURS") else 422


@routeur.post("/paiements/{paiement_id}/decisions/{decision}", response_class=HTMLResponse)
def decider(request: Request, app: ApplicationDep, agent: AgentDep, form: FormulaireDep, paiement_id: int,
            decision: str) -> Response:
    verifier_csrf(agent, form)
    if decision not in DECISIONS_PAIEMENT:
        return page(request, "erreur.html", {"titre": "Décision inconnue", "message": decision}, 404, agent)
    if not agent.peut(decision):
        raise Interdit(f"Votre rôle ({presentation.ROLES.get(agent.role, agent.role)}) ne permet pas la décision "
                       f"« {presentation.DECISIONS[decision]} ».")
    ctx = _contexte_paiement(app, paiement_id)
    if ctx is None:
        return page(request, "erreur.html", {"titre": "Paiement introuvable",
                                             "message": f"Aucun paiement n° {paiement_id}."}, 404, agent)
    demande = lire_demande(decision, form, ctx["disponible"])
    if demande.erreurs:
        return page(request, "paiement.html", {**ctx, "erreurs": demande.erreurs, "saisie": form,
                                               "decision_en_erreur": decision, "actif": "file"}, 422, agent)
    if form.get("confirme") != "oui":
        return page(request, "confirmer.html", {**ctx, "demande": demande, "form": form, "actif": "file"},
                    agent=agent)
    try:
        appliquer(app, paiement_id, demande, agent.identifiant)
    except DecisionRefusee as exc:
        message, statut = _refus(exc)
        log.info("decision_refusee", paiement_id=paiement_id, decision=decision, identifiant=agent.identifiant)
        ctx = _contexte_paiement(app, paiement_id) or ctx
        return page(request, "paiement.html", {**ctx, "erreurs": [message], "decision_en_erreur": decision,
                                               "actif": "file"}, statut, agent)
    log.info("decision_page", paiement_id=paiement_id, decision=decision, identifiant=agent.identifiant)
    return rediriger(f"/paiements/{paiement_id}?fait={decision}")


@routeur.post("/familles/{numero}/credit", response_class=HTMLResponse)
def appliquer_credit(request: Request, app: ApplicationDep, agent: AgentDep, form: FormulaireDep,
                     numero: str) -> Response:
    verifier_csrf(agent, form)
    if not agent.peut("appliquer_credit"):
        raise Interdit(f"Votre rôle ({presentation.ROLES.get(agent.role, agent.role)}) ne permet pas "
                       "d'appliquer un crédit.")
    compte = requetes.compte_famille(app, numero)
    if compte is None:
        return page(request, "erreur.html", {"titre": "Dossier introuvable", "message": numero}, 404, agent)
    motif = form.get("motif", "").strip()
    choisies = [f["numero"] for f in compte["factures"] if form.get(f"f_{f['numero']}") == "oui"]
    if not motif:
        return page(request, "famille.html", {"c": compte, "erreurs": ["Le motif est obligatoire."],
                                              "actif": "familles"}, 422, agent)
    if form.get("confirme") != "oui":
        return page(request, "confirmer_credit.html", {"c": compte, "motif": motif, "choisies": choisies,
                                                       "actif": "familles"}, agent=agent)
    try:
        applique = decisions.appliquer_credit(app, numero, qui=agent.identifiant, motif=motif,
                                              factures=choisies or None)
    except DecisionRefusee as exc:
        message, statut = _refus(exc)
        return page(request, "famille.html", {"c": compte, "erreurs": [message], "actif": "familles"}, statut, agent)
    return rediriger(f"/familles/{numero}?{urlencode({'fait': 'appliquer_credit', 'montant': applique})}")

