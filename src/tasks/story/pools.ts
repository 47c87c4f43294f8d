/**
 * The building blocks of the synthetic narratives. Pool sizes follow the original (64 locations,
 * 49 characters, 20 events, 18 × 15 × 21 = 5,670 items "adjective material object"); the names,
 * phrases and sentences are ours. Placeholders: {p} protagonist, {l} location, {c} character,
 * {e} event, {i} item.
 */

export const PROTAGONIST = 'Arion';

export const LOCATIONS: readonly string[] = [
  'Aquileia', 'Ostia', 'Pompeii', 'Herculaneum', 'Neapolis', 'Tarentum', 'Croton', 'Paestum',
  'Agrigentum', 'Selinus', 'Segesta', 'Messana', 'Rhegium', 'Brundisium', 'Ancona', 'Cumae',
  'Capua', 'Mediolanum', 'Verona', 'Genua', 'Smyrna', 'Sardis', 'Priene', 'Didyma',
  'Colophon', 'Phocaea', 'Chalcedon', 'Sinope', 'Trapezus', 'Tanais', 'Olbia', 'Chersonesus',
  'Panticapaeum', 'Gades', 'Emporion', 'Saguntum', 'Carthago Nova', 'Hispalis', 'Corduba', 'Burdigala',
  'Lugdunum', 'Arelate', 'Nemausus', 'Tolosa', 'Augusta Treverorum', 'Colonia Agrippina', 'Mogontiacum', 'Eboracum',
  'Aquae Sulis', 'Camulodunum', 'Vindobona', 'Aquincum', 'Sirmium', 'Serdica', 'Naissus', 'Dyrrachium',
  'Apollonia', 'Nicopolis', 'Edessa', 'Nisibis', 'Dura-Europos', 'Seleucia', 'Hatra', 'Bactra',
];

export const CHARACTERS: readonly string[] = [
  'Aelia', 'Bastian', 'Corin', 'Delphine', 'Emeric', 'Fenna', 'Galen', 'Halvard', 'Isolde', 'Jasper',
  'Kestrel', 'Linnea', 'Maelis', 'Nerys', 'Osric', 'Perrin', 'Quilla', 'Rowan', 'Saskia', 'Tobiah',
  'Ulric', 'Vesna', 'Wendell', 'Ximena', 'Yorick', 'Zuriel', 'Anselm', 'Brigid', 'Caspian', 'Dagny',
  'Eamon', 'Freya', 'Gideon', 'Hesper', 'Ingrid', 'Joaquin', 'Kaia', 'Lucan', 'Mireille', 'Nolan',
  'Odile', 'Pallas', 'Quentin', 'Rosalind', 'Severin', 'Thea', 'Ursula', 'Valen', 'Wren',
];

export const EVENTS: readonly string[] = [
  'a harvest fair', 'a sudden flood', 'a quarrel between the guilds', 'a royal procession',
  'a fire in the docks', 'a contested election', 'an outbreak of fever', "a smugglers' raid",
  'a wedding between rival houses', 'a comet in the night sky', 'a strike of the dock workers',
  'a theft from the temple', 'a chariot race', 'a dispute over water rights', 'a visiting embassy',
  'the collapse of the old bridge', 'a masked carnival', 'a public trial', 'a tremor of the earth',
  'a shipwreck near the harbour',
];

export const ITEM_ADJECTIVES: readonly string[] = [
  'battered', 'burnished', 'carved', 'chipped', 'dented', 'enamelled', 'etched', 'faded', 'filigreed',
  'gleaming', 'hammered', 'inlaid', 'lacquered', 'painted', 'scratched', 'slender', 'tarnished', 'twisted',
];
export const ITEM_MATERIALS: readonly string[] = [
  'brass', 'pewter', 'tin', 'iron', 'steel', 'oak', 'cedar', 'ebony', 'bone', 'onyx', 'garnet', 'topaz',
  'coral', 'glass', 'clay',
];
export const ITEM_OBJECTS: readonly string[] = [
  'brooch', 'dagger', 'mirror', 'flask', 'bowl', 'compass', 'lantern', 'spoon', 'box', 'cup', 'buckle',
  'whistle', 'thimble', 'hairpin', 'medallion', 'scepter', 'sundial', 'inkwell', 'locket', 'tiara', 'coin',
];

export const SCENE: readonly string[] = [
  '{p} reached {l} late in the afternoon, when the streets were still busy with carts.',
  'Early in the morning, {p} walked through the gates of {l} behind a line of pilgrims.',
  'Dusk had settled over {l} by the time {p} arrived, tired and dusty from the road.',
  '{p} came to {l} on a grey and windy day, with the market just closing.',
  'After a long climb, {p} finally saw the roofs of {l} spread out below.',
  '{p} arrived in {l} by boat, stepping onto a crowded wooden pier.',
  'The bells were ringing when {p} entered {l} for the first time.',
  '{p} rode into {l} at noon, squinting against the bright sun.',
  'It was raining softly as {p} made for the heart of {l}.',
  '{p} reached {l} just as the lamps were being lit along the main road.',
];

export const REASON: readonly string[] = [
  '{p} had heard that the merchants of {l} kept rare goods for patient buyers.',
  'An old letter had sent {p} to {l} in search of a forgotten friend.',
  '{p} hoped that {l} would offer a few quiet days and some good bargains.',
  'A debt of honour had brought {p} to {l}, though nobody there knew it.',
  '{p} wanted to see with their own eyes whether the stories about {l} were true.',
  'Curiosity, more than any plan, had drawn {p} to {l}.',
  '{p} came to {l} to trade, and perhaps to learn something useful on the way.',
  'A map bought years ago had marked {l} with a small, careful cross.',
  '{p} was following the road east, and {l} lay directly on it.',
  'Friends on the coast had told {p} that {l} was worth the detour.',
];

export const EVENT: readonly string[] = [
  'That same day, {e} had the whole town talking.',
  'Everyone {p} passed seemed to be discussing {e}.',
  'The arrival coincided with {e}, which had emptied several streets.',
  'Nobody in {l} could think of anything but {e}.',
  'Before long, news of {e} reached every tavern in {l}.',
  'The talk at the fountain was all about {e}.',
  'By evening, {e} had changed the mood of the whole quarter.',
  '{p} soon learned that {e} had kept the guards busy all week.',
  'Prices in the market rose and fell with every rumour about {e}.',
  'Children ran through the lanes shouting about {e}.',
];

export const MEETING: readonly string[] = [
  'In a small shop near the square, {p} met {c}, a trader with quick hands.',
  '{c} greeted {p} at the door of an inn and offered a seat by the fire.',
  'While asking for directions, {p} was introduced to {c}.',
  '{c} noticed {p} admiring a stall and came over to talk.',
  'At the well, {p} fell into conversation with {c}.',
  '{p} was waiting out the heat in a courtyard when {c} sat down nearby.',
  '{c}, who knew everyone in the neighbourhood, invited {p} inside.',
  'A mutual acquaintance pointed {p} towards {c}.',
  '{p} bumped into {c} in a narrow alley, and both laughed it off.',
  '{c} called out to {p} from behind a table covered in wares.',
];

export const CONVERSATION: readonly string[] = [
  'They talked for a while about the price of grain and the state of the roads.',
  'The two of them compared stories about the weather on the coast.',
  'They agreed that the harbour tax had grown far too high.',
  'Their talk wandered to old songs and the people who still sang them.',
  'They spoke about the best routes over the mountains before winter.',
  'Both of them had opinions about the new magistrate of {l}.',
  'They shared a cup of tea and discussed the quality of local wool.',
  'The conversation turned to distant relatives and who had married whom.',
  'They argued good-naturedly about which city baked the finest bread.',
  'They traded advice about honest and dishonest money changers.',
  'They wondered aloud how long the peace with the hill tribes would last.',
  'Their talk drifted to the ruins outside {l} and who might have built them.',
  'They discussed the rumours of bandits on the southern road.',
  'Both admitted that they missed the simple food of their childhood.',
  'They talked about the dyes used in the cloth sold in {l}.',
  'They laughed about a famous quarrel between two local bakers.',
  'They considered whether the river would flood again in spring.',
  'The two exchanged tips on where to find clean water on long journeys.',
  'They spoke quietly about the politics of the city council.',
  'Their conversation touched on the craftsmen who had left {l} for richer towns.',
  'They discussed which inns were safe and which were best avoided.',
  'They remembered the last great festival and how crowded it had been.',
  'They debated whether luck or hard work mattered more in trade.',
  'The talk moved to the ships that had gone missing that season.',
  'They compared the coins of different cities and their true weight in silver.',
  'They shared what they knew about the healers of {l}.',
  'They spoke about the horses bred in the valley and their price.',
  'Both of them complained, cheerfully, about the noise of the market.',
  'They exchanged news about the scholars who had visited {l} recently.',
  'They wondered what the coming year would bring to travellers like them.',
];

export const PURCHASE: readonly string[] = [
  'After some friendly haggling, {p} bought the {i} from {c}.',
  '{p} paid {c} a fair price for the {i}.',
  '{c} sold {p} the {i}, wrapped carefully in cloth.',
  'In the end {p} purchased the {i} that {c} had been showing off.',
  '{p} handed over a few coins and took the {i} from {c}.',
  'Once they agreed on a price, {p} bought the {i} from {c}.',
  '{p} could not resist the {i} and bought it from {c}.',
  '{c} finally parted with the {i}, and {p} paid without complaint.',
  'Before leaving, {p} bought the {i} from {c}.',
];

export const SALE: readonly string[] = [
  '{p} sold the {i} to {c}, who had wanted one for years.',
  '{c} offered a good price for the {i}, and {p} sold it.',
  'In return, {p} sold {c} the {i}.',
  '{p} parted with the {i}, selling it to {c}.',
  '{c} bought the {i} from {p} after a brief look.',
];

export const FAREWELL: readonly string[] = [
  '{p} thanked {c} and said goodbye.',
  '{c} wished {p} a safe journey.',
  'With a handshake, {p} took leave of {c}.',
  '{p} promised {c} to come back one day.',
  '{c} walked {p} to the end of the street before they parted.',
  '{p} and {c} parted as good acquaintances.',
  '{p} bid {c} farewell with a small bow.',
  '{c} waved as {p} set off again.',
  '{p} left {c} to the next customer.',
  'They said their goodbyes, and {p} moved on.',
];

export const CONCLUSION: readonly string[] = [
  'The next morning {p} left {l} behind.',
  '{p} spent one more night in {l} and then moved on.',
  'With new things to think about, {p} went back to the road.',
  '{p} left {l} before sunrise, while the streets were still quiet.',
  'Soon {l} was only a shape on the horizon behind {p}.',
  '{p} packed up and headed towards the next town.',
  'By the following evening {p} was already far from {l}.',
  '{p} left {l} with a lighter purse and a heavier pack.',
  'There was nothing more to do in {l}, so {p} moved on.',
  '{p} set out again, looking forward to whatever came next.',
];

export const EXTRA: readonly string[] = [
  'The road ahead was long, but the weather looked kind.',
  'Somewhere a dog barked, and then all was quiet.',
  'The smell of bread followed the traveller out of town.',
  'Clouds gathered in the west, promising rain.',
  'A flock of birds rose from the fields and circled away.',
  'The sound of the market faded slowly behind.',
  'Far off, a shepherd was singing an old song.',
  'The dust of the road settled once more.',
  'It had been, on the whole, a good day.',
  'The evening air was cool and smelled of pine.',
];

export function fill(template: string, values: { p?: string; l?: string; c?: string; e?: string; i?: string }): string {
  return template.replace(/\{([plcei])\}/g, (_, key: 'p' | 'l' | 'c' | 'e' | 'i') => {
    const v = values[key];
    if (v === undefined) throw new Error(`story template needs {${key}}: ${template}`);
    return v;
  });
}
